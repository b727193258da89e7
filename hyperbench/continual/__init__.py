"""Continual learning (von Oswald et al., "Continual learning with hypernetworks"): the task sequences
(benchmarks.py), the methods compared (methods.py: finetune, EWC, SI, hnet, joint) and the accuracy-matrix
metrics (metrics.py). Run by tasks/continual.py; drawn by viz/cl_plots.py."""

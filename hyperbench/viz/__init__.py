"""Every figure hyperbench draws (matplotlib, headless): plots.py (training curves, kernels, angle curves,
reconstructions), transform_plots.py (transform and compensate tasks), cl_plots.py (continual learning)."""

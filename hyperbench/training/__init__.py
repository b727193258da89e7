"""Training: the one engine (engine.py: the loop, in named steps), what a task plugs into it (objectives.py),
checkpoints (checkpoint.py: format, writing, reading, the settings a resume may change), trainer.resume
(resume.py), run-directory ownership (ownership.py) and per-epoch loggers (loggers.py)."""

"""hyperbench's Hydra configs, importable as the package hyperbench.conf (hyperbench/conf links here in a
checkout; a wheel holds them as hyperbench/conf/), so the CLI finds them by package name wherever it is installed."""

"""transferlab's Hydra configs, shipped inside the package (``pkg://transferlab.conf``): one folder per group."""

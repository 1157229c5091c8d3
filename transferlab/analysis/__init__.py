"""Post-hoc analysis of runs and sweeps (``sweep_summary``: tables and plots for a Hydra multirun folder)."""

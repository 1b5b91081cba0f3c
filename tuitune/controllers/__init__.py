"""Plain objects a screen owns for one job that needs workers: starting a run, resuming one, the data engine."""

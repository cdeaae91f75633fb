"""Trainer arguments every tiny CPU run of the tests shares: float32 on the CPU (TRL's configs default to bf16, which
raises or silently autocasts on a CPU), no experiment loggers and no progress bars."""

CPU = {"use_cpu": True, "bf16": False, "report_to": "none", "disable_tqdm": True}

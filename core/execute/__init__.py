"""Doing what a plan says: the apply engine, write pacing, the plan lock, read-back, the journal, reports, undo, the tenant default."""

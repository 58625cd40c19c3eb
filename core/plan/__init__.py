"""From a selection to a plan file: the filter grammar, selection from CSV, skip reasons, the digest."""

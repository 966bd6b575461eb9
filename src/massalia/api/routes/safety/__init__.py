"""The public-safety domain's HTTP routes (mounted by massalia.safety.plugin)."""

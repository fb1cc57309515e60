"""Running one build and many: steps with reverse-order cleanup, tasks, facts, the plug-in contracts."""

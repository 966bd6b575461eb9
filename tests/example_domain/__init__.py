"""A minimal domain plug-in, the smallest thing that plugs into Massalia: one action, one route, one command."""

"""Work queue, timers and shutdown plumbing."""

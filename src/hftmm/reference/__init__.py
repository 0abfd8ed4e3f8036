"""Pure-Python reference twins of the hftcore kernels: slow, obviously right."""

"""ardiff: differentiation of NumPy programs by Activation Relaxation."""

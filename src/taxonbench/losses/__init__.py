"""Pure-torch loss functions (no registry wiring); method classes call them."""

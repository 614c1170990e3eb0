"""Training: trainer loop, optimizers, sharding, checkpoints, logging."""

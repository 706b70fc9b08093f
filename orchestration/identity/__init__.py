"""The identity rules as Python reads them, the synthetic people generator and identity accuracy against its ground truth."""

"""Hermetic test toolkit: an in-tree build backend and factories (see ``factory``)."""

"""Pure logic of SegLens: numpy and PIL only, no torch, no web framework, no ORM."""

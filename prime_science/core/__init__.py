"""Foundation shared by every seed system: types and protocols (:mod:`.types`), boundary
errors (:mod:`.errors`), counter-based random numbers and the Beta sampler (:mod:`.random`),
device meshes for the arm axis (:mod:`.mesh`) and Orbax checkpointing (:mod:`.checkpoint`)."""

__all__: list[str] = []

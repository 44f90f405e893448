"""Foundation shared by every seed system: types and protocols (:mod:`.types`), boundary
errors (:mod:`.errors`), counter-based random numbers and the Beta sampler (:mod:`.random`),
device meshes for the arm axis (:mod:`.mesh`), Orbax checkpointing (:mod:`.checkpoint`), the
experiment contract (:mod:`.experiment`) and the machine a result was measured on
(:mod:`.machine`)."""

__all__: list[str] = []

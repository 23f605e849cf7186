"""The project's strict evaluation protocol (``score --protocol strict``): :mod:`.records` reads
predictions, :mod:`.metrics` scores one item, :mod:`.aggregate` averages per benchmark and
:mod:`.evaluation` runs the whole scoring."""

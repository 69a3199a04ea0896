"""Hermetic test toolkit: an in-tree build backend and factories (``factory``), registries and
the CLI in-process (``registry_cli``), the end-to-end playground of the install and run tests
(``world``), a venv with hpm importable (``hpm_venv``), and running hpm as another user
(``nobody``)."""

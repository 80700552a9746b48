"""The core: the event model, settings, media time and the artifact store, which every other package uses."""

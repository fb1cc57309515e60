"""Importers: other tools' build templates made into recipes (`recipe import`); each registers by name."""

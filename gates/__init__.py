"""Promotion gates behind one Protocol (see ``gates.base``)."""

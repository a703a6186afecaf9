"""Citizen-voice indicators computed from the warehouse marts."""

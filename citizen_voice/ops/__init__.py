"""Operating the platform: alerts and status."""

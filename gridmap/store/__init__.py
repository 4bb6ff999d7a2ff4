"""Persistence: the only package that knows SQL (models, repositories, migrations, cluster)."""

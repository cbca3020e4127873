"""Transforms: conformed core tables, reporting marts and the published report."""

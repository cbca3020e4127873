"""Data-quality checks on pseudonymized staging batches, with Great Expectations.

``expectations.suites`` builds and stores one suite per extract contract;
``expectations.validate`` runs a suite against a staging DataFrame.
"""

import os

# Set before anything imports great_expectations: the hub sends no usage analytics.
os.environ["GX_ANALYTICS_ENABLED"] = "False"

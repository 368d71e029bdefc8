"""The sweep: plan (checked in the driver), Ray worker, driver and the Parquet store."""

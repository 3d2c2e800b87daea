"""The LUME operator: kopf handlers that turn Flow and FlowRun resources into Prefect objects."""

"""Pure functions: params -> plan, plan -> pod manifest, (CustomRun, pod, now) -> decision."""

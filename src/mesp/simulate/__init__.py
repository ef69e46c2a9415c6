"""Trace-driven cold-start simulation: policies, the replay engine, and trade-off curves.

See :mod:`mesp.simulate.engine` for the instance model and metrics, :mod:`mesp.simulate.policies` for
the policies (fixed keep-alive, Shahrad et al.'s hybrid histogram, forecast-driven, oracle), and
:mod:`mesp.simulate.curves` for the sweeps, Pareto fronts and plots.
"""

from mesp.simulate.engine import (BASELINE, PolicyResult, SimulationReport, Unit, UnitResult, instances_needed,
                                  simulate, units_from_dataset)
from mesp.simulate.policies import (FixedKeepAlive, ForecastCache, ForecastPolicy, HybridHistogram,
                                    OraclePolicy, Policy, RecentQuantileForecaster)

__all__ = ["BASELINE", "FixedKeepAlive", "ForecastCache", "ForecastPolicy", "HybridHistogram", "OraclePolicy",
           "Policy", "PolicyResult", "RecentQuantileForecaster", "SimulationReport", "Unit", "UnitResult",
           "instances_needed", "simulate", "units_from_dataset"]

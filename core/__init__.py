"""ledgerflow: an event-sourced ML experiment tracker. ``import ledgerflow as lf`` is the tracking SDK.

The fluent API mirrors MLflow's, so moving a training script over is a change of import::

    import ledgerflow as lf
    lf.set_experiment("mnist")
    with lf.start_run(run_name="baseline"):
        lf.log_params({"lr": 0.01})
        for step in range(100):
            lf.log_metric("loss", 1 / (step + 1), step=step)
"""

from ledgerflow._version import __version__

__all__ = ["__version__"]

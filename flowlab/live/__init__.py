r"""A live training dashboard: choose a target and a flow, press Start, watch it learn.

:class:`Trainer` is an ipywidgets dashboard. Training runs in a background thread over the
same loop as :func:`flowlab.fit` (:class:`flowlab.Training`), so the controls stay responsive;
a second thread redraws the view (samples over the data, the learned density with its colour
bar, the loss curve) up to fifteen times a second from a copy of the flow. Everything the
buttons do is also a method, so notebooks and tests can drive it::

    trainer = fl.live.Trainer(target="circles")
    trainer.start()
    trainer.wait(steps=200)          # block until 200 steps are done
    trainer.stop()
    trainer.lr = 1e-3                # settings are attributes (and controls)
    trainer.seed = 1                 # another start and other mini-batches
    trainer.reset()                  # a fresh flow with the current settings

Without a kernel (the rendered book) nothing can train: :meth:`Trainer.record` repeats the
same training and makes a kernel-free replay of it (see :mod:`flowlab.replay`).

The package has four parts: :mod:`~flowlab.live.choices` (the targets and the flow families,
built from the public recipes), :mod:`~flowlab.live.settings` (each setting's default, check
and cap), :mod:`~flowlab.live.session` (the headless session: threads, start / stop / wait /
reset / record) and :mod:`~flowlab.live.dashboard` (the widgets; a :class:`Trainer` holds a
:class:`Session`).
The dashboard offers every data set of :data:`flowlab.targets.SAMPLERS`, every density of
:data:`flowlab.targets.DENSITIES`, and what is added to :data:`TARGETS`.
"""

from .choices import FAMILIES, TARGETS, DataTarget, DensityTarget, Family, target_names
from .dashboard import Trainer
from .session import Session

__all__ = ["DataTarget", "DensityTarget", "FAMILIES", "Family", "Session", "TARGETS", "Trainer", "target_names"]

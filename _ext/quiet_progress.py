"""Run in each kernel of the book build (before the chapter's cells): training progress bars are
not drawn, so that a page whose only widget would be a finished progress bar loads no widget
manager (4.4 MB). A reader of the static page sees the result the cell prints; a reader who runs
the chapter sees the bar as usual.

It wraps ``tqdm.auto.tqdm``, which ``flowlab.train`` imports when ``fit`` starts, so that every
bar is created with ``disable=True``.
"""


def _quiet_progress():
    import tqdm.auto

    bar = tqdm.auto.tqdm

    def quiet(*args, **kwargs):
        kwargs["disable"] = True
        return bar(*args, **kwargs)

    tqdm.auto.tqdm = quiet


_quiet_progress()
del _quiet_progress

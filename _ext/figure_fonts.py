"""Run in each kernel of the book build (before the chapter's cells): every PNG that matplotlib
writes records the size of the smallest text drawn in it, in pixels of the image, as the PNG
text chunk ``flowlab:smallest-font-px`` (``none`` when it draws no text).

The browser test multiplies that size by the figure's scale on the page (shown width over natural
width) to check that every label a reader sees is at least 9 pixels tall. Nothing else changes:
the pixels are the same, and a chapter run without this file simply lacks the chunk.

It patches matplotlib's Agg renderer: ``RendererAgg.draw_text`` notes each string's font size
(``points_to_pixels`` of its size in points, so the figure's dpi counts), ``FigureCanvasAgg.draw``
starts a new list per drawing, and ``matplotlib.image.imsave``, which Agg's PNG writer calls
right after drawing, adds the smallest size to the PNG's metadata.
"""


def _record_smallest_font():
    import matplotlib.image
    from matplotlib.backends import backend_agg

    key = "flowlab:smallest-font-px"
    sizes = []
    draw_text, draw, imsave = backend_agg.RendererAgg.draw_text, backend_agg.FigureCanvasAgg.draw, matplotlib.image.imsave

    def noting_draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if str(s).strip():
            sizes.append(self.points_to_pixels(prop.get_size_in_points()))
        return draw_text(self, gc, x, y, s, prop, angle, ismath, mtext)

    def fresh_draw(self):
        sizes.clear()
        return draw(self)

    def imsave_noting_fonts(fname, arr, *args, metadata=None, **kwargs):
        if str(kwargs.get("format") or "png").lower() == "png":
            smallest = f"{min(sizes):.2f}" if sizes else "none"
            metadata = {**(metadata or {}), key: smallest}
        return imsave(fname, arr, *args, metadata=metadata, **kwargs)

    backend_agg.RendererAgg.draw_text = noting_draw_text
    backend_agg.FigureCanvasAgg.draw = fresh_draw
    matplotlib.image.imsave = imsave_noting_fonts


_record_smallest_font()
del _record_smallest_font

"""What every tab shares and how the page is served: the look (theme, CSS), the Content-Security-Policy
head, the request-body cap, and a tab's opening line with the Refresh button that fills it in.

Kept apart from :mod:`routellm_demo.ui.page` so that the tab modules can use :func:`tab_intro`
without importing the page that imports them.
"""

from __future__ import annotations

import gradio as gr

# System fonts: the page renders the same offline, and loads nothing from third-party font servers.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])
CSS = """
.route-card {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;}
.why-table td, .why-table th {padding: 2px 6px; vertical-align: top; font-size: 0.9em;}
.muted {color: var(--body-text-color-subdued); font-size: 0.9em;}
"""
# Images load only from this server or inline data. The Chatbots' sanitize_html removes scripts and
# handlers but keeps <img> and Markdown images, so an answer or a prompt could otherwise make every
# viewer's browser fetch a URL of its choosing (a tracking pixel).
HEAD = """<meta http-equiv="Content-Security-Policy" content="img-src 'self' data: blob:">"""


def launch_options() -> dict:
    """``demo.launch(**launch_options())``, in :func:`routellm_demo.ui.main` and in the tests: the look, the
    CSP head, and a 1 MiB cap on request bodies (:mod:`routellm_demo.body_limit`) except the file upload,
    capped at the what-if's file size. A fresh dict per launch: Gradio edits its app_kwargs in place."""
    from starlette.middleware import Middleware

    from routellm_demo.body_limit import BodyLimit
    from routellm_demo.whatif import WHATIF_MAX_BYTES

    return {"css": CSS, "theme": THEME, "head": HEAD, "max_file_size": WHATIF_MAX_BYTES,
            "app_kwargs": {"middleware": [Middleware(BodyLimit, upload_max_bytes=WHATIF_MAX_BYTES)]}}


def tab_intro(text: str) -> gr.Button:
    """A tab's opening line with its Refresh button beside it (call inside the tab); returns the button."""
    with gr.Row():
        gr.Markdown(text)
        return gr.Button("Refresh", size="sm", scale=0, min_width=100)


def refresh_view(tab: gr.Tab, refresh: gr.Button, view, inputs, outputs, api_name: str) -> None:
    """Run a tab's ``view`` on its Refresh button (API ``api_name``) and whenever the tab is opened
    (``<api_name>_tab``)."""
    refresh.click(view, inputs, outputs, api_name=api_name)
    tab.select(view, inputs, outputs, api_name=f"{api_name}_tab")

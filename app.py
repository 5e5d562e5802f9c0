"""Hugging Face Spaces / ``python app.py`` entry point: the Gradio app of :mod:`routellm_demo.ui`.

Kept at the repository root because a Space runs the file named by ``app_file`` in README.md.
"""

from routellm_demo.ui import main

if __name__ == "__main__":
    main()

"""Paper reproductions: each module has run(full=False, out_dir=..., progress=True) -> dict."""

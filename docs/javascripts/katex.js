// Render $...$ and $$...$$ (wrapped by pymdownx.arithmatex) with the vendored KaTeX, on every
// page load, including mkdocs-material's instant navigation.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
  });
});

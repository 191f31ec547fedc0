"""A state-transition explorer for notebook 01 (ipywidgets 8): pick two states, see whether the
transition map lets a task move from one to the other."""

import ipywidgets as widgets

from cube.state import State, valid_state_transition


class TransitionExplorer(widgets.HBox):
    """Pick two states and see whether listing 4.10 lets a task move from one to the other."""

    def __init__(self) -> None:
        states = [(s.name, s) for s in State]
        self.src = widgets.Dropdown(options=states, value=State.RUNNING, description="From")
        self.dst = widgets.Dropdown(options=states, value=State.COMPLETED, description="To")
        self.verdict = widgets.HTML()
        self.src.observe(lambda _: self._judge(), "value")
        self.dst.observe(lambda _: self._judge(), "value")
        super().__init__([self.src, self.dst, self.verdict])
        self._judge()

    def __repr__(self) -> str:
        return f"TransitionExplorer({self.src.value} → {self.dst.value})"

    def _judge(self) -> None:
        ok = valid_state_transition(self.src.value, self.dst.value)
        mark = "✓ valid" if ok else "✗ not allowed"
        self.verdict.value = f"<b>{self.src.value} → {self.dst.value}</b>: {mark}"

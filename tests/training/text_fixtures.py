"""Helpers for the parser tests."""


def with_lines(text: str, replacements: dict[int, str]) -> str:
    """`text` with its 1-based lines replaced."""
    lines = text.splitlines()
    for number, line in replacements.items():
        lines[number - 1] = line
    return "\n".join(lines) + "\n"

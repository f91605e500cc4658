"""Run promptsource's own Template.apply() (in its own venv) on the examples given on stdin.

stdin: {"cases": [{"dataset": str, "subset": str|null, "examples": [dict, ...]}]}
stdout: {"results": [{"dataset", "subset", "template_id", "name", "jinja", "answer_choices",
                      "outputs": [{"parts": [str, ...]} | {"error": str}]}]}
"""

import json
import sys

from promptsource.templates import DatasetTemplates


def main() -> None:
    cases = json.load(sys.stdin)["cases"]
    results = []
    for case in cases:
        templates = DatasetTemplates(case["dataset"], case["subset"])
        for template_id in sorted(templates.templates):
            template = templates.templates[template_id]
            outputs = []
            for example in case["examples"]:
                try:
                    outputs.append({"parts": list(template.apply(dict(example)))})
                except Exception as exc:
                    outputs.append({"error": f"{type(exc).__name__}: {exc}"})
            results.append(
                {
                    "dataset": case["dataset"],
                    "subset": case["subset"],
                    "template_id": template.get_id(),
                    "name": template.get_name(),
                    "jinja": template.jinja,
                    "answer_choices": template.answer_choices,
                    "outputs": outputs,
                }
            )
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()

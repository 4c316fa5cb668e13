"""What a spec author runs on a draft profile, one module per job.

- `lint`: `check_directory(path)`, every problem of a draft directory as `file:line: what`
  (manifest, schemas, `$ref`s), then `consistency`;
- `consistency`: `consistency(profile)`, where the profile cannot be satisfied by provspec's
  mocks and checks;
- `diff`: `diff(a, b)`, what changes between two profiles, per role and per message;
- `examples`: `find_examples(text)`, the ```` ```json app:<message> ```` blocks of a Markdown
  draft;
- `locate`: the line of a JSON member or offset, for the `file:line` of every problem.
"""

from __future__ import annotations

__all__: list[str] = []

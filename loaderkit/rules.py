"""The rule catalogue: every diagnostic code loaderkit can emit, documented.

`docs/rules.md` is generated from this module (`python -m loaderkit.rules`) and a
test fails when the two drift, so the catalogue cannot fall out of date.
"""

from __future__ import annotations

from dataclasses import dataclass

from loaderkit.errors import Diagnostic, Location, Severity


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    catches: str
    why: str
    bad: str
    good: str

    def at(self, location: Location, message: str, hint: str | None = None) -> Diagnostic:
        return Diagnostic(location, self.code, self.severity, message, hint)


E, W = Severity.ERROR, Severity.WARNING
_HEAD = "# yaml-language-server: $schema=../schema/recipe.schema.json\nloaderkit: 1\n"
_SRC = "source:\n  uri: data/train.lance\n"

RULES: dict[str, Rule] = {
    r.code: r
    for r in [
        # --- read: YAML text -> positioned tree -------------------------------------------
        Rule("LK001", "yaml-syntax", E,
             "Text that is not valid YAML: tabs used for indentation, unterminated strings, "
             "unbalanced brackets, unprintable characters such as NUL.",
             "PyYAML's own message points at the scanner state, not at what to fix; "
             "loaderkit reports the position and the problem in one line.",
             _HEAD + "source:\n\turi: data/train.lance\n",
             _HEAD + _SRC),
        Rule("LK002", "empty-recipe", E,
             "A recipe file that is empty or holds only comments.",
             "An empty file validates as nothing and would silently build nothing.",
             "# TODO\n",
             _HEAD + _SRC),
        Rule("LK003", "not-a-mapping", E,
             "A recipe whose top level (or a section that must be a mapping) is a list or a "
             "scalar.",
             "Every section of a recipe is keyed; a list at the top is almost always an "
             "indentation mistake.",
             "- loaderkit: 1\n- source: data/train.lance\n",
             _HEAD + _SRC),
        Rule("LK004", "duplicate-key", E,
             "The same key twice in one mapping.",
             "PyYAML silently keeps the last value, so the first one is ignored without a word.",
             _HEAD + _SRC + "loader:\n  num_workers: 2\n  num_workers: 8\n",
             _HEAD + _SRC + "loader:\n  num_workers: 8\n"),
        Rule("LK005", "document-too-large", E,
             "Documents beyond loaderkit's limits: more than 1 MiB of text, nesting deeper than "
             "64 levels, or aliases that expand to more than 100,000 nodes (a 'billion laughs' "
             "bomb).",
             "A recipe is a few dozen lines; anything this large is a mistake or an attack, and "
             "expanding it would exhaust memory.",
             "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n# ... and so on\n",
             _HEAD + _SRC),
        Rule("LK006", "unsafe-tag", E,
             "YAML tags outside the core schema, such as `!!python/object`.",
             "Recipes are data; a tag that builds objects is a way to run code. loaderkit loads "
             "YAML safely and reports the tag instead of ignoring it.",
             _HEAD + "source: !!python/object:os.system {}\n",
             _HEAD + _SRC),
        Rule("LK007", "unreadable-file", E,
             "A recipe path that does not exist, is a directory where a file is needed, or is not "
             "UTF-8/UTF-16 text.",
             "The user should learn which file and where the bad bytes are, not see a "
             "UnicodeDecodeError.",
             "(a recipe saved as Latin-1 with a byte 0xE9 in a comment)",
             "(the same recipe saved as UTF-8)"),
        # --- resolve: extends, overrides, ${env:} ----------------------------------------
        Rule("LK101", "extends-not-found", E,
             "An `extends:` path that does not name a readable file (paths are relative to the "
             "recipe that says `extends`).",
             "A missing base would silently drop every inherited setting.",
             _HEAD + "extends: bsae.yaml\n",
             _HEAD + "extends: base.yaml\n"),
        Rule("LK102", "extends-cycle", E,
             "Recipes that extend each other in a loop, or a chain of `extends` more than 32 "
             "recipes deep.",
             "A cycle has no meaning and would recurse forever; a chain that deep is a mistake.",
             "# a.yaml\nloaderkit: 1\nextends: b.yaml\n# b.yaml\nloaderkit: 1\nextends: a.yaml\n",
             "# a.yaml\nloaderkit: 1\nextends: base.yaml\n"
             "# b.yaml\nloaderkit: 1\nextends: base.yaml\n"),
        Rule("LK103", "env-unset", E,
             "`${env:NAME}` where NAME is unset and no default is given (checked when a recipe is "
             "built; lint only warns, see LK106).",
             "Failing at build time is better than failing in a worker an hour into training.",
             _HEAD + "source:\n  uri: ${env:DATA_URI}\n",
             _HEAD + "source:\n  uri: ${env:DATA_URI,data/train.lance}\n"),
        Rule("LK104", "bad-override", E,
             "An override that is not `KEY=VALUE` with a dotted key, or that descends into a "
             "value that is not a mapping.",
             "A mistyped override must not be silently ignored.",
             "loaderkit build r.yaml --set loader.num_workers",
             "loaderkit build r.yaml --set loader.num_workers=8"),
        Rule("LK105", "bad-env-reference", E,
             "A malformed `${env:...}` reference, or one that is not the whole value.",
             "References are resolved as whole strings (inside each worker, for text; at build, "
             "as the field's type, for numbers, booleans and names); a half-interpolated value "
             "cannot be.",
             _HEAD + "source:\n  uri: s3://${env:BUCKET}/train.lance\n",
             _HEAD + "source:\n  uri: ${env:TRAIN_URI}\n"),
        Rule("LK106", "env-unset-at-lint", W,
             "`lint` found `${env:NAME}` unset in its own environment, with no default.",
             "CI usually lacks production secrets, so this is only a warning; `build` makes it "
             "an error (LK103).",
             _HEAD + "source:\n  uri: s3://bucket/train.lance\n  storage_options:\n"
             "    aws_secret_access_key: ${env:AWS_SECRET_ACCESS_KEY}\n",
             "(the same recipe, linted where AWS_SECRET_ACCESS_KEY is set)"),
        Rule("LK107", "env-not-taken", E,
             "`${env:NAME}` under a key that takes no reference: `name`, `split`, `splits.by`, "
             "`transform`, `connection_factory`, `extends` and the items of a `columns` list. "
             "Text keys that do take one: `filter` (and each source's), a `columns` mapping's "
             "expressions, `uri`, `table`, `version`, `storage_options`, `api_key`, `region`, "
             "`host_override`; number, boolean and fixed-name keys take one too (read at build).",
             "These keys are read offline and must be the same in every process (the code to "
             "import, the rows of a split, the names of the output columns); passing the "
             "reference's text on would make the engine or the importer fail on `${env:...}`.",
             _HEAD + _SRC + "transform: ${env:TRANSFORM}\n",
             _HEAD + _SRC + "transform: my_project.data:decode\n"),
        # --- validate: the recipe's models and cross-field rules -------------------------
        Rule("LK201", "unknown-key", E,
             "A key that the recipe language does not have, with the closest known key as a "
             "suggestion.",
             "A typo such as `batch_sise` would otherwise leave the real setting at its default.",
             _HEAD + _SRC + "loader:\n  batch_sise: 128\n",
             _HEAD + _SRC + "loader:\n  batch_size: 128\n"),
        Rule("LK202", "invalid-value", E,
             "A value of the wrong type or outside its range: a string for `num_workers`, a "
             "negative `batch_size`, an unknown `format`, an empty `columns` list. A number, "
             "boolean or name read from `${env:NAME,default}` is checked as the field's type "
             "(the environment's value at build, the default in lint) and reported at the "
             "reference.",
             "torch and lance would raise later, far from the recipe line that caused it.",
             _HEAD + _SRC + "loader:\n  batch_size: lots\n",
             _HEAD + _SRC + "loader:\n  batch_size: ${env:BATCH_SIZE,128}\n"),
        Rule("LK203", "missing-key", E,
             "A required key is absent: `loaderkit`, `source` (or `sources`), `source.uri`.",
             "Without them there is nothing to build.",
             "loaderkit: 1\nformat: torch\n",
             _HEAD + _SRC),
        Rule("LK204", "unknown-version", E,
             "`loaderkit:` names a recipe-format version this loaderkit does not know.",
             "A newer format may mean things this version would silently misread.",
             "loaderkit: 2\n" + _SRC,
             "loaderkit: 1\n" + _SRC),
        Rule("LK205", "bad-reference", E,
             "`transform` or `source.connection_factory` that is not a `module:attribute` path.",
             "These are imported by name inside each worker; a lambda or a bare name cannot be.",
             _HEAD + _SRC + "transform: decode\n",
             _HEAD + _SRC + "transform: my_project.data:decode\n"),
        Rule("LK206", "worker-option-without-workers", E,
             "`persistent_workers` or `prefetch_factor` with `num_workers: 0`.",
             "torch.utils.data.DataLoader raises ValueError for these at construction.",
             _HEAD + _SRC + "loader:\n  num_workers: 0\n  persistent_workers: true\n",
             _HEAD + _SRC + "loader:\n  num_workers: 2\n  persistent_workers: true\n"),
        Rule("LK207", "fork-with-workers", E,
             "`multiprocessing_context: fork` with `num_workers > 0`, unless `loader.allow_fork: "
             "true` opts in (then LK506 warns).",
             "Lance is not fork-safe: forked DataLoader workers segfault or hang in 10-50% of "
             "runs. spawn and forkserver are safe.",
             _HEAD + _SRC + "loader:\n  num_workers: 4\n  multiprocessing_context: fork\n",
             _HEAD + _SRC + "loader:\n  num_workers: 4\n  multiprocessing_context: spawn\n"),
        Rule("LK208", "rank-out-of-range", E,
             "`sampler.rank` not below `sampler.world_size`.",
             "Such a rank would read no rows, or another rank's rows.",
             _HEAD + _SRC + "sampler:\n  type: shuffle\n  rank: 2\n  world_size: 2\n",
             _HEAD + _SRC + "sampler:\n  type: shuffle\n  rank: 1\n  world_size: 2\n"),
        Rule("LK209", "table-required", E,
             "A LanceDB database URI (`memory://`, `db://NAME`) without `source.table`.",
             "A database holds many tables; loaderkit cannot guess which one.",
             _HEAD + "source:\n  uri: db://my-project\n",
             _HEAD + "source:\n  uri: db://my-project\n  table: train\n"),
        Rule("LK210", "memory-with-workers", E,
             "A `memory://` database with `num_workers > 0`.",
             "An in-memory table lives in one process; each worker would see an empty database "
             "(or a full copy pickled into it).",
             _HEAD + "source:\n  uri: memory://\n  table: t\nloader:\n  num_workers: 2\n",
             _HEAD + "source:\n  uri: data/db\n  table: t\nloader:\n  num_workers: 2\n"),
        Rule("LK211", "option-for-other-source", W,
             "`api_key`, `region` or `host_override` on a source that is not `db://`; or `table` "
             "with a `.lance` dataset path.",
             "The option has no effect there, which is usually a sign of a mixed-up recipe.",
             _HEAD + "source:\n  uri: data/train.lance\n  api_key: ${env:LANCEDB_API_KEY}\n",
             _HEAD + "source:\n  uri: db://my-project\n  table: train\n"
             "  api_key: ${env:LANCEDB_API_KEY}\n"),
        Rule("LK212", "decode-unknown-column", E,
             "A `decode:` entry for a column that is not among the recipe's `columns`.",
             "Decoding runs on the delivered batch; a column it names that is not there "
             "would fail in every worker.",
             _HEAD + _SRC + "columns: [img, prompt]\ndecode:\n  image: {type: image}\n",
             _HEAD + _SRC + "columns: [image, prompt]\ndecode:\n  image: {type: image}\n"),
        Rule("LK213", "decode-needs-named-columns", E,
             "`decode:` with a format whose batches have no named columns to replace "
             "(`arrow`, `pandas`, `polars`, `torch_col`).",
             "Decoded images are tensors; those formats cannot hold them in place of a "
             "column.",
             _HEAD + _SRC + "format: arrow\ndecode:\n  image: {type: image}\n",
             _HEAD + _SRC + "format: torch\ndecode:\n  image: {type: image}\n"),
        Rule("LK214", "unknown-split", E,
             "`split` names a split that `splits.fractions` does not declare.",
             "A typo would read no rows, or fail far from the line that caused it.",
             _HEAD + _SRC + "splits:\n  by: id\n  fractions: {train: 0.9, val: 0.1}\n"
             "split: trian\n",
             _HEAD + _SRC + "splits:\n  by: id\n  fractions: {train: 0.9, val: 0.1}\n"
             "split: train\n"),
        Rule("LK215", "split-fractions", E,
             "`splits.fractions` that cannot be: none at all, a fraction not above 0 or above "
             "1, or fractions adding up to more than 1.",
             "Splits never share a row, so together they cover at most all of them.",
             _HEAD + _SRC + "splits:\n  by: id\n  fractions: {train: 0.9, val: 0.2}\n",
             _HEAD + _SRC + "splits:\n  by: id\n  fractions: {train: 0.9, val: 0.1}\n"),
        Rule("LK216", "split-without-splits", E,
             "`split` with no `splits` declared (in the recipe or a base it extends).",
             "Without the fractions there is no split to read.",
             _HEAD + _SRC + "split: train\n",
             _HEAD + _SRC + "splits:\n  by: id\n  fractions: {train: 0.9, val: 0.1}\n"
             "split: train\n"),
        Rule("LK217", "source-and-sources", E,
             "A recipe with both `source` and `sources`.",
             "One dataset or a mixture of several: both at once has no meaning.",
             _HEAD + _SRC + "sources:\n  web: {uri: data/web.lance}\n",
             _HEAD + "sources:\n  web: {uri: data/web.lance, weight: 3}\n"
             "  books: {uri: data/books.lance, weight: 1}\n"),
        Rule("LK218", "mixture-without-sources", W,
             "`mixture` settings in a recipe that reads one `source`.",
             "They have no effect, which is usually a sign of a mixed-up recipe.",
             _HEAD + _SRC + "mixture:\n  stop: all_exhausted\n",
             _HEAD + "sources:\n  web: {uri: data/web.lance}\n  books: {uri: data/b.lance}\n"
             "mixture:\n  stop: all_exhausted\n"),
        Rule("LK219", "mixture-with-sharded-fragment", E,
             "`sampler.type: sharded_fragment` with `sources`.",
             "It deals whole fragments of one dataset to ranks; a mixture's epoch interleaves "
             "rows of several.",
             _HEAD + "sources:\n  web: {uri: data/web.lance}\n  books: {uri: data/b.lance}\n"
             "sampler:\n  type: sharded_fragment\n",
             _HEAD + "sources:\n  web: {uri: data/web.lance}\n  books: {uri: data/b.lance}\n"
             "sampler:\n  type: shuffle\n"),
        Rule("LK220", "live-source", E,
             "A recipe whose `source` is `live: true` (its rows come from the LanceDB Table or "
             "lance.LanceDataset given to `load_recipe(path, source=...)`) loaded without "
             "`source=` (or by `loaderkit build`), or with other `source` keys beside `live`, "
             "or `live` in one of `sources`. Lint accepts `source: {live: true}` alone: "
             "such a recipe needs no uri.",
             "A live source exists in the Python process that made it, so only `load_recipe` can "
             "pass it; keys beside `live` would be silently ignored.",
             _HEAD + "source:\n  live: true\n  uri: data/train.lance\n",
             _HEAD + "source:\n  live: true   # load_recipe(path, source=table)\n"),
        Rule("LK221", "mixture-weights-too-far-apart", E,
             "Two weights of one mixture more than a million times apart (each is a finite "
             "number in (0, 1e15]; the largest is at most 1e6 times the smallest).",
             "A source with less than a millionth of the mixture delivers next to nothing, "
             "and under `stop: all_exhausted` the epoch runs until it delivered all its rows: "
             "about its rows x (the sum of the weights / its weight) rows in all.",
             _HEAD + "sources:\n  web: {uri: data/web.lance, weight: 1.0e+9}\n"
             "  books: {uri: data/books.lance, weight: 1}\n",
             _HEAD + "sources:\n  web: {uri: data/web.lance, weight: 1000}\n"
             "  books: {uri: data/books.lance, weight: 1}\n"),
        Rule("LK225", "tokenize-unknown-column", E,
             "A `tokenize` entry whose column is not one of the recipe's output `columns`.",
             "Nothing would be tokenized: the column is not in the batch.",
             _HEAD + _SRC + "columns: [text]\ntokenize:\n  txt: {tokenizer: bpe.json}\n",
             _HEAD + _SRC + "columns: [text]\ntokenize:\n  text: {tokenizer: bpe.json}\n"),
        Rule("LK226", "pack-column-not-tokenized", E,
             "`pack.column` that is not a key of `tokenize`.",
             "Packing works on token ids; a string column has none.",
             _HEAD + _SRC + "pack: {column: text, seq_len: 2048}\n",
             _HEAD + _SRC + "tokenize:\n  text: {tokenizer: bpe.json}\n"
             "pack: {column: text, seq_len: 2048}\n"),
        Rule("LK227", "pack-format", E,
             "`pack` with a `format` other than torch or numpy.",
             "A packed batch is five int64 arrays [B, seq_len]; only torch tensors and numpy "
             "arrays hold them as DESIGN.md gives them.",
             _HEAD + _SRC + "format: pandas\ntokenize:\n  text: {tokenizer: bpe.json}\n"
             "pack: {column: text, seq_len: 2048}\n",
             _HEAD + _SRC + "format: numpy\ntokenize:\n  text: {tokenizer: bpe.json}\n"
             "pack: {column: text, seq_len: 2048}\n"),
        Rule("LK228", "pack-with-transform", E,
             "`transform` together with `pack`.",
             "Packing runs in the main process over the global document order, after the "
             "workers; a transform (which runs in the workers) would see no packed batch.",
             _HEAD + _SRC + "transform: my_project.data:mask\ntokenize:\n  text: "
             "{tokenizer: bpe.json}\npack: {column: text, seq_len: 2048}\n",
             _HEAD + _SRC + "tokenize:\n  text: {tokenizer: bpe.json}\n"
             "pack: {column: text, seq_len: 2048}\n"),
        Rule("LK229", "tokenize-needs-named-columns", E,
             "`tokenize` (without `pack`) with a format whose batches have no named columns to "
             "replace (arrow, pandas, polars, torch_col).",
             "The tokenized ids replace the text column in the batch; these formats have no "
             "place for a list of ids per row.",
             _HEAD + _SRC + "format: arrow\ntokenize:\n  text: {tokenizer: bpe.json}\n",
             _HEAD + _SRC + "format: python_col\ntokenize:\n  text: {tokenizer: bpe.json}\n"),
        Rule("LK230", "cache-without-object-store", W,
             "`cache` on a source whose files are not on an object store: a local path or "
             "file:// (already local), a LanceDB table (`table`; `db://` is read through "
             "LanceDB's API, which has no files to copy) or a `connection_factory`. Nothing "
             "is cached.",
             "The key would be silently ignored: a recipe that promises a local copy should "
             "say when it gets none.",
             _HEAD + _SRC + "  cache:\n    max_gb: 50\n",
             _HEAD + "source:\n  uri: s3://my-bucket/train.lance\n  cache:\n    max_gb: 50\n"),
        Rule("LK231", "cache-dir-not-local", E,
             "`cache.dir` written as a URI (s3://, gs://, ...) rather than a local directory.",
             "The cache is the local copy of an object store's files: it must be on this "
             "machine's disk (a fast local NVMe ideally).",
             _HEAD + "source:\n  uri: s3://my-bucket/train.lance\n  cache:\n"
             "    dir: s3://my-bucket/cache\n",
             _HEAD + "source:\n  uri: s3://my-bucket/train.lance\n  cache:\n"
             "    dir: /mnt/nvme/lk-cache\n"),
        # --- secrets ---------------------------------------------------------------------
        Rule("LK301", "secret-in-clear", E,
             "`api_key`, or a storage option named like a key, secret, token, password or "
             "credential, written in clear in the recipe. The message never repeats the value.",
             "Recipes are committed and shared; a key in one is a leaked key.",
             _HEAD + "source:\n  uri: s3://bucket/train.lance\n  storage_options:\n"
             "    aws_secret_access_key: AKIA...\n",
             _HEAD + "source:\n  uri: s3://bucket/train.lance\n  storage_options:\n"
             "    aws_secret_access_key: ${env:AWS_SECRET_ACCESS_KEY}\n"),
        # --- build: checks against the real data ------------------------------------------
        Rule("LK401", "source-not-found", E,
             "The dataset, database or table named by `source` cannot be opened.",
             "Found at build time, before any worker starts.",
             _HEAD + "source:\n  uri: data/trian.lance\n",
             _HEAD + _SRC),
        Rule("LK402", "unknown-column", E,
             "A column in `columns` that the dataset's schema does not have (or an invalid SQL "
             "expression in a column mapping).",
             "Otherwise the first worker fails with an engine error.",
             _HEAD + _SRC + "columns: [imgae, prompt]\n",
             _HEAD + _SRC + "columns: [image, prompt]\n"),
        Rule("LK403", "invalid-filter", E,
             "A `filter` (or a source's) that Lance cannot parse, that names unknown columns, "
             "or that Lance would read only in part: it runs the first complete expression "
             "and ignores the rest (`id > 5) OR (1=1`, `id > 5; DROP TABLE t`, `id > 5 "
             "trailing words`). `lint` finds a `)` that closes nothing and text after a `;`; "
             "the build asks the engine about the rest.",
             "Lance would raise inside the first worker, or, for a filter read in part, "
             "silently deliver other rows than the recipe says.",
             _HEAD + _SRC + "filter: \"aesthetic_score >\"\n",
             _HEAD + _SRC + "filter: \"aesthetic_score > 5\"\n"),
        Rule("LK404", "format-cannot-hold-column", E,
             "A column the recipe's format cannot represent at all: a string, binary or "
             "nested column with `torch_col` (one tensor of numbers). The default `torch` "
             "format holds such columns as Python lists, as torch's default_collate does.",
             "Tensors hold numbers; the conversion would crash in the worker.",
             _HEAD + _SRC + "columns: [image_emb, prompt]\nformat: torch_col\n",
             _HEAD + _SRC + "columns: [image_emb, prompt]\nformat: torch\n"),
        Rule("LK405", "reference-not-importable", E,
             "`transform` or `connection_factory` names a module or attribute that cannot be "
             "imported (including a module that raises or calls `sys.exit` when imported: a "
             "script without an `if __name__ == \"__main__\":` guard), or an object that is "
             "not callable.",
             "Each worker imports it by name; better to learn now than in every worker.",
             _HEAD + _SRC + "transform: my_project.data:decod\n",
             _HEAD + _SRC + "transform: my_project.data:decode\n"),
        Rule("LK406", "version-not-found", E,
             "`source.version` names a version or tag the dataset does not have.",
             "A pinned recipe must read exactly the data it names.",
             _HEAD + _SRC + "  version: 999\n",
             _HEAD + _SRC + "  version: 12\n"),
        Rule("LK407", "uneven-ranks", W,
             "`sampler.uneven: allow` with several ranks where the ranks take different numbers "
             "of batches in an epoch (a row count that does not divide into whole steps, or "
             "`sharded_fragment` over unequal fragments). The default, `uneven: split`, gives "
             "every rank the same number of batches; the hint names only settings that do so "
             "without leaving a rank empty.",
             "Under DDP the rank with fewer batches leaves the others waiting at the last "
             "all-reduce forever.",
             _HEAD + _SRC + "sampler:\n  type: sharded_fragment\n  world_size: 2\n"
             "  uneven: allow\nloader:\n  batch_size: 64\n",
             _HEAD + _SRC + "sampler:\n  type: sharded_fragment\n  world_size: 2\n"
             "loader:\n  batch_size: 64\n"),
        Rule("LK408", "workers-without-transform", W,
             "`num_workers > 0` with no `transform` and no `decode`: the workers only read "
             "and ship batches.",
             "Reading is already parallel inside Lance; shipping each batch back costs about "
             "2 us per row, so workers without work to do make the loader slower.",
             _HEAD + _SRC + "loader:\n  num_workers: 4\n",
             _HEAD + _SRC + "transform: my_project.data:decode\nloader:\n  num_workers: 4\n"),
        Rule("LK409", "loader-refused", E,
             "The runtime refused to build the loader: `mode: cache` over data larger than "
             "`cache_mb`, or a source that cannot serve the recipe (a `filter` on a remote "
             "table read without Lance, `memory://` reached without a factory).",
             "These are known before the first batch; failing in the first epoch would waste "
             "the job's start-up.",
             _HEAD + _SRC + "sampler:\n  type: shuffle\n  mode: cache\n  cache_mb: 1\n",
             _HEAD + _SRC + "sampler:\n  type: shuffle\n  mode: cache\n  cache_mb: 8192\n"),
        Rule("LK410", "empty-selection", W,
             "A recipe that selects no rows at all: its `filter` matches none of the pinned "
             "version's rows, or the dataset is empty.",
             "Every epoch would be empty: a training loop runs zero steps without a word, "
             "usually because of a typo in a filter's value.",
             _HEAD + _SRC + "filter: \"split = 'trian'\"\n",
             _HEAD + _SRC + "filter: \"split = 'train'\"\n"),
        Rule("LK411", "user-code-raised", E,
             "A `transform` or `connection_factory` raised or called `sys.exit`, or returned "
             "what it must not (a transform: None; a factory: anything but a LanceDB Table or "
             "a lance.LanceDataset), while the build opened the source or `loaderkit build "
             "--take` pulled batches through the loader. The diagnostic is at the recipe key "
             "that named the function, and its hint shows the traceback's frames in your own "
             "files (none from the standard library, installed packages or loaderkit).",
             "A wall of worker and loader frames hides the one line that matters; the recipe "
             "key and your frames are what you need to fix it.",
             _HEAD + _SRC + "transform: my_project.data:decode   # raises on some batch\n",
             _HEAD + _SRC + "transform: my_project.data:decode   # fixed\n"),
        Rule("LK412", "decode-wrong-type", E,
             "`decode:` names a column that holds no encoded data: not binary, a blob, a "
             "Hugging Face Image or a string.",
             "An image decoder reads bytes; numbers or vectors are not images.",
             _HEAD + _SRC + "columns: [image_emb]\ndecode:\n  image_emb: {type: image}\n",
             _HEAD + _SRC + "columns: [image]\ndecode:\n  image: {type: image}\n"),
        Rule("LK413", "mixture-column-types-differ", E,
             "A column that the sources of a mixture hold with different types (an int32 "
             "label in one, a string in another).",
             "A batch mixes rows of every source; its columns need one type.",
             "# web.lance: label int32; books.lance: label string\n",
             "# both sources: label int32 (cast one when writing it)\n"),
        Rule("LK414", "no-equal-steps", E,
             "An epoch in which a rank would take no batch at all (fewer rows than ranks; "
             "`drop_last: true` with fewer rows than one step of batch_size x world_size; "
             "`sharded_fragment` with fewer fragments than ranks), or in which the default "
             "`uneven: split` cannot give every rank the same number of batches without "
             "delivering a row twice (one-row batches over a row count the ranks do not "
             "divide; `sharded_fragment` with a rank holding fewer rows than the largest "
             "rank's batches). The hint names only settings, checked against the data, that "
             "give every rank the same number of batches, none of them empty.",
             "A rank with nothing to do trains nothing and, under DDP, leaves the others "
             "waiting at their first all-reduce; unequal steps hang the last one.",
             _HEAD + _SRC + "sampler:\n  type: sharded_fragment\n  world_size: 8   # one "
             "fragment\nloader:\n  drop_last: true\n",
             _HEAD + _SRC + "sampler:\n  type: sharded_batch\n  world_size: 8\n"),
        Rule("LK415", "mixture-epoch-too-long", E,
             "A mixture whose epoch would hold more than 2**40 rows: under `stop: "
             "all_exhausted` an epoch runs until the source with the most rows per share of "
             "the weights delivered all of them, about its rows x (the sum of the weights / "
             "its weight) rows in all. Reported at that source's weight.",
             "No epoch of a trillion rows is meant; it is a weight far too small for its "
             "source's rows (the build checks this against the real row counts).",
             "# books.lance: 2,000,000 rows\n" + _HEAD
             + "sources:\n  web: {uri: data/web.lance, weight: 1}\n"
             "  books: {uri: data/books.lance, weight: 1.0e-6}\nmixture:\n"
             "  stop: all_exhausted\n",
             "# books.lance: 2,000,000 rows\n" + _HEAD
             + "sources:\n  web: {uri: data/web.lance, weight: 1}\n"
             "  books: {uri: data/books.lance, weight: 1.0e-6}\nmixture:\n"
             "  stop: first_exhausted\n"),
        Rule("LK419", "tokenizer-not-loaded", E,
             "A `tokenize` tokenizer that is not there, or does not load as a Hugging Face "
             "`tokenizers` tokenizer.json (a path relative to the recipe file, or a directory "
             "holding tokenizer.json).",
             "Every worker would fail on its first batch; nothing is downloaded from the hub.",
             "# tokenizers/ holds vocab.txt only\n" + _HEAD + _SRC
             + "tokenize:\n  text: {tokenizer: tokenizers}\n",
             "# tokenizers/ holds tokenizer.json\n" + _HEAD + _SRC
             + "tokenize:\n  text: {tokenizer: tokenizers}\n"),
        Rule("LK420", "tokenizer-special-token-missing", E,
             "`add_bos` / `add_eos` with a tokenizer that has no such token (none named, none "
             "in a tokenizer_config.json beside it, none of <bos>/<s>, <eos>/</s>), or a "
             "`bos_token` / `eos_token` that is not in its vocabulary.",
             "The documents would run together without the boundary the model learns from.",
             "# bpe.json has no </s> nor <eos>\n" + _HEAD + _SRC
             + "tokenize:\n  text: {tokenizer: bpe.json, add_eos: true}\n",
             "# bpe.json has <|endoftext|>\n" + _HEAD + _SRC
             + "tokenize:\n  text: {tokenizer: bpe.json, eos_token: '<|endoftext|>'}\n"),
        Rule("LK421", "tokenize-not-text", E,
             "A `tokenize` column whose data type is not a string.",
             "A tokenizer reads text; ids, bytes or numbers cannot be tokenized.",
             "# id: int64\n" + _HEAD + _SRC + "tokenize:\n  id: {tokenizer: bpe.json}\n",
             "# text: string\n" + _HEAD + _SRC + "tokenize:\n  text: {tokenizer: bpe.json}\n"),
        Rule("LK422", "tokenize-column-not-found", E,
             "A `tokenize` column that the source does not have (a recipe without `columns` "
             "reads every column, so only the build can tell).",
             "Every batch would fail to tokenize a column that is not there.",
             "# the dataset has id, text\n" + _HEAD + _SRC
             + "tokenize:\n  txt: {tokenizer: bpe.json}\n",
             "# the dataset has id, text\n" + _HEAD + _SRC
             + "tokenize:\n  text: {tokenizer: bpe.json}\n"),
        Rule("LK424", "cache-dir-unusable", W,
             "A `cache` whose directory cannot be created or written (permissions, a file in "
             "its place, a read-only mount). Found by `build`.",
             "Without a local copy every epoch reads the object store again, at the store's "
             "speed and price.",
             _HEAD + "source:\n  uri: s3://my-bucket/train.lance\n  cache:\n"
             "    dir: /proc/lk-cache\n",
             _HEAD + "source:\n  uri: s3://my-bucket/train.lance\n  cache:\n"
             "    dir: /mnt/nvme/lk-cache\n"),
        Rule("LK425", "cache-smaller-than-version", W,
             "A `cache` bound (`max_gb`, or the disk's free space) smaller than the files of "
             "the version the recipe reads. Found by `build`, which says how much is needed.",
             "Only part of the version fits: the rest is read from the store every epoch, and "
             "each epoch's files push out others (least recently used first).",
             "# train.lance on s3: 120 GB\n" + _HEAD + "source:\n"
             "  uri: s3://my-bucket/train.lance\n  cache:\n    max_gb: 100\n",
             "# train.lance on s3: 120 GB\n" + _HEAD + "source:\n"
             "  uri: s3://my-bucket/train.lance\n  cache:\n    max_gb: 150\n"),
        Rule("LK426", "cache-not-applied", W,
             "A `cache` on a source that turns out, once its `${env:...}` values are read, not "
             "to be a Lance dataset on an object store (a local path, or a LanceDB "
             "database). Lint says the same of a uri written in the recipe (LK230).",
             "The key has no effect there; the recipe's reader should know.",
             "# DATA_URI=data/train.lance\n" + _HEAD + "source:\n  uri: ${env:DATA_URI}\n"
             "  cache:\n    max_gb: 50\n",
             "# DATA_URI=s3://my-bucket/train.lance\n" + _HEAD + "source:\n"
             "  uri: ${env:DATA_URI}\n  cache:\n    max_gb: 50\n"),
        # --- check: pickle, spawn and secrets safety -------------------------------------
        Rule("LK501", "unpicklable-reference", E,
             "A `transform` or `connection_factory` that cannot cross into a spawn worker: a "
             "lambda, a nested function or closure, something defined in `__main__` or a "
             "notebook, a bound method of an unpicklable object.",
             "spawn workers import it by name; these have no importable name.",
             "# my_project/data.py\ndecode = lambda batch: batch\n",
             "# my_project/data.py\ndef decode(batch):\n    return batch\n"),
        Rule("LK502", "pickle-round-trip-failed", E,
             "An object that must be sent to workers fails a real `pickle.dumps`/`loads` round "
             "trip: open files, sockets, locks, threads, LanceDB `Table` or connection objects.",
             "DataLoader would fail when it starts its workers, after the run has begun.",
             "# a factory module whose attribute is an open lancedb Table\n"
             "table = lancedb.connect('db').open_table('t')\n",
             "# a function that opens the table inside the worker\n"
             "def open_table(name):\n    return lancedb.connect('db').open_table(name)\n"),
        Rule("LK503", "spawn-probe-failed", E,
             "A fresh interpreter, started with the recipe's multiprocessing context, could not "
             "unpickle the worker payload and open the source within the timeout.",
             "This is exactly what every DataLoader worker will do; the probe fails first, "
             "once, with the reason. `loaderkit build` waits for it; `load_recipe` runs it "
             "in the background, reads in the main process meanwhile, starts no worker "
             "before it passed, and raises this from the iteration that would start them.",
             "# a factory that only works in the parent (state set up by the training script)\n",
             "# a factory that opens the table from its arguments and the environment\n"),
        Rule("LK504", "secret-in-payload", E,
             "A secret's bytes were found in what would be pickled to a worker.",
             "Pickles are written to pipes, and often to logs and crash dumps; a worker reads "
             "secrets from its own environment instead.",
             "# a connection factory that captures the API key in a module-level object\n",
             "# a connection factory that reads os.environ['LANCEDB_API_KEY'] when called\n"),
        Rule("LK505", "large-payload", W,
             "The pickled payload sent to each worker is larger than 8 MiB.",
             "Every worker pays for it at start-up; an inlined table or model is usually the "
             "cause.",
             "# a transform that is a bound method of an object holding a big lookup table\n",
             "# a module-level transform that loads its lookup table once per worker\n"),
        Rule("LK506", "fork-opted-in", W,
             "`multiprocessing_context: fork` with workers, allowed by `loader.allow_fork: true`.",
             "Forked workers over Lance segfault or hang in 10-50% of runs on this kind of "
             "machine.",
             _HEAD + _SRC + "loader:\n  num_workers: 2\n  multiprocessing_context: fork\n"
             "  allow_fork: true\n",
             _HEAD + _SRC + "loader:\n  num_workers: 2\n  multiprocessing_context: forkserver\n"),
    ]
}


def rule(code: str) -> Rule:
    return RULES[code]


def render_catalogue() -> str:
    """The Markdown text of `docs/rules.md`."""
    lines = [
        "# Rule catalogue",
        "",
        "<!-- Generated by `python -m loaderkit.rules > docs/rules.md`; a test fails on drift. -->",
        "",
        "Every problem loaderkit reports has a stable code. `error`s fail `lint` and `build` "
        "(exit 1); `warning`s are printed but do not.",
        "",
        "| code | name | severity |",
        "| --- | --- | --- |",
    ]
    lines += [f"| [{r.code}](#{r.code.lower()}) | {r.name} | {r.severity} |"
              for r in RULES.values()]
    for r in RULES.values():
        lines += [
            "",
            f"## {r.code}",
            "",
            f"**{r.name}** ({r.severity})",
            "",
            f"What it catches: {r.catches}",
            "",
            f"Why it matters: {r.why}",
            "",
            "Bad:",
            "",
            "```yaml",
            r.bad.rstrip("\n"),
            "```",
            "",
            "Good:",
            "",
            "```yaml",
            r.good.rstrip("\n"),
            "```",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_catalogue(), end="")

"""The report's Jinja2 templates, kept as strings so that the package needs no data files.

Written for a clinician: headings that say what a section shows, numbers explained in plain words
next to the statistics, images with their scores. No script; plots are inline SVG.
"""

from __future__ import annotations

STYLE = """
:root { --a: #d55e00; --b: #0072b2; --ink: #1f2328; --muted: #5b6370; --line: #d8dce2; --panel: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 0 28px 48px; }
header.top { background: #14213d; color: #fff; padding: 22px 28px 18px; }
header.top .inner { max-width: 1180px; margin: 0 auto; }
header.top h1 { margin: 0 0 4px; font-size: 24px; font-weight: 650; }
header.top p { margin: 2px 0; color: #d7def0; }
.sets { display: flex; gap: 10px; flex-wrap: wrap; margin-top: 10px; }
.chip { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 600; font-size: 13px;
        color: #fff; }
.chip.a { background: var(--a); } .chip.b { background: var(--b); }
nav.toc { margin: 18px 0 6px; font-size: 14px; color: var(--muted); }
nav.toc a { color: var(--b); margin-right: 14px; text-decoration: none; }
h2 { font-size: 21px; margin: 34px 0 8px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 18px; margin: 0 0 6px; }
h4 { font-size: 15px; margin: 18px 0 8px; color: var(--muted); font-weight: 600; }
p.lede { color: var(--muted); margin: 6px 0 14px; max-width: 900px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 7px 9px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.rank { font-weight: 700; color: var(--muted); }
.bar { display: inline-block; height: 8px; border-radius: 4px; background: var(--a); vertical-align: middle;
       margin-right: 6px; }
.judge-2 { color: #1a7f37; font-weight: 600; } .judge-1 { color: #9a6700; font-weight: 600; }
.judge-0 { color: #cf222e; }
.verdict { font-size: 17px; font-weight: 600; padding: 8px 12px; border-radius: 6px; background: #f6f8fa; }
.supported { color: #1a7f37; font-weight: 600; } .unsupported { color: #cf222e; }
tr.unsupported-row td { color: var(--muted); }
.why { display: block; font-size: 12px; color: var(--muted); font-weight: normal; }
article.finding { border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px; margin: 18px 0; }
article.finding .plain { margin: 4px 0 12px; max-width: 920px; }
.cols { display: flex; gap: 26px; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; max-width: 470px; }
.legend span { margin-right: 14px; font-size: 13px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px;
            margin-right: 5px; }
dl.stats { display: grid; grid-template-columns: auto auto; gap: 4px 16px; margin: 0; font-size: 14px; }
dl.stats dt { color: var(--muted); } dl.stats dd { margin: 0; font-variant-numeric: tabular-nums; }
.gallery { display: flex; gap: 10px; flex-wrap: wrap; }
.thumb { width: 132px; margin: 0; }
.thumb img { width: 132px; height: 132px; object-fit: contain; background: #000; border-radius: 6px; display: block;
             border: 3px solid transparent; }
.thumb.a img { border-color: var(--a); } .thumb.b img { border-color: var(--b); }
.thumb figcaption { font-size: 12px; margin: 2px 0 0; color: var(--ink); }
.search { display: flex; gap: 18px; flex-wrap: wrap; align-items: flex-start; margin: 8px 0 14px; }
.boxed { position: relative; display: inline-block; line-height: 0; }
.boxed img { max-width: 180px; max-height: 180px; border-radius: 6px; }
.boxed .box { position: absolute; border: 2px solid #ffd400; box-shadow: 0 0 0 1px #000; }
.zoom img { max-width: 440px; max-height: 360px; border-radius: 6px; background: #000; display: block; }
.note { background: var(--panel); border-left: 4px solid var(--line); padding: 8px 12px; font-size: 14px; }
.iteration { border-left: 4px solid var(--line); padding: 4px 0 4px 16px; margin: 16px 0; }
.iteration ol, .iteration ul { margin: 4px 0; padding-left: 22px; }
details summary { cursor: pointer; color: var(--b); }
ul.notes { font-size: 14px; }
table.searches img.mini { width: 180px; border-radius: 4px; background: #000; display: block; }
table.searches td:first-child { width: 40%; }
table.config td:first-child { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
footer { color: var(--muted); font-size: 13px; margin-top: 40px; }
"""

REPORT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ v.title }} · RadDiff evidence report</title>
<style>{{ style }}</style>
</head>
<body>
<header class="top"><div class="inner">
  <h1>{{ v.title }}</h1>
  <p>What distinguishes the chest X-rays of set A from those of set B, found and scored by RadDiff.</p>
  <div class="sets">
    <span class="chip a">Set A · {{ v.set_a }} · {{ v.images_a }} images</span>
    <span class="chip b">Set B · {{ v.set_b }} · {{ v.images_b }} images</span>
  </div>
  <p style="margin-top:10px">Finished {{ v.finished or "(time not recorded)" }} · analysis {{ v.analysis_id }}</p>
</div></header>
<main>
<nav class="toc">On this page:
  <a href="#findings">Findings</a><a href="#evidence">Evidence per finding</a>
  <a href="#history">How the search went</a><a href="#settings">Settings and notes</a>
</nav>

<section id="findings">
<h2>Findings that distinguish set A from set B</h2>
<p class="lede">Each finding is a sentence in radiology language that was proposed as more common in set A.
It is scored on every image by how similar the image is to the sentence (a chest X-ray language-image model,
{{ v.embedding_model or "the embedding model" }}), on {{ v.ranked_a }} images of A and {{ v.ranked_b }} of B.
<b>AUROC</b> is the chance that a randomly chosen image of A scores higher than one of B: 0.5 means the
finding does not separate the sets, 1.0 means every image of A scores above every image of B.
<b>p</b> is the chance of an AUROC this high if the finding did not separate the sets (a permutation test);
<b>q</b> is p corrected for testing {{ v.findings|length }} findings at once.
<b>Specific AUROC</b> asks whether the finding tracks the difference more than statements about other things
do: every sentence's scores move with whatever separates the sets, so the shift that sentences about other
findings, devices and bones share is taken out of each image's score first. What remains is small; sentences
about unrelated things keep about 0.5 or less of it, so a finding is specific when it stays clearly above them
(its own q, against those sentences). A finding is <b>supported</b> only where both the AUROC and the
specificity are significant at the false discovery rate.</p>
{% if v.verdict %}<p class="verdict">{{ v.verdict[:1]|upper }}{{ v.verdict[1:] }}.</p>{% endif %}
{% macro finding_table(rows, linked) %}
<table>
<thead><tr><th>#</th><th>Finding</th><th>AUROC</th>
<th>{{ (v.findings[0].ci_level * 100)|round|int }}% interval</th><th>p</th><th>q</th>
<th>Specific AUROC</th><th>Supported</th>
{% if v.acc_at_1 is not none %}<th>Judged against the ground truth</th>{% endif %}
<th>Found in</th></tr></thead>
<tbody>
{% for f in rows %}
<tr{% if f.supported == false %} class="unsupported-row"{% endif %}>
  <td class="rank">{{ f.rank }}</td>
  <td>{% if linked %}<a href="#finding-{{ f.rank }}">{{ f.text }}</a>{% else %}{{ f.text }}{% endif %}</td>
  <td class="num"><span class="bar" style="width: {{ bar_width(f.auroc) }}px"></span>{{ f.auroc|num(3) }}</td>
  <td class="num">{{ f.ci|interval }}</td>
  <td class="num">{{ f.p_value|pvalue }}</td>
  <td class="num">{{ f.q_value|pvalue }}</td>
  <td class="num">{{ f.specific_auroc|num(3) }}</td>
  <td>{% if f.supported is none %}–{% elif f.supported %}<span class="supported">✓ supported</span>
      {% else %}<span class="unsupported">✗ not supported<span class="why">{{ f.support }}</span></span>{% endif %}</td>
  {% if v.acc_at_1 is not none %}
  <td>{% if f.judged is not none %}<span class="judge-{{ f.judged }}">{{ f.judged }} · {{ judge_words[f.judged] }}
      </span>{% endif %}</td>
  {% endif %}
  <td>iteration {{ f.iteration or 1 }}{% if f.origin == "refinement" %}, from zoomed crops{% endif %}</td>
</tr>
{% endfor %}
</tbody>
</table>
{% endmacro %}
{% if v.findings %}
{{ finding_table(v.findings[:v.detailed], true) }}
{% if v.findings|length > v.detailed %}
<details><summary>{{ v.findings|length - v.detailed }} more findings, ranked lower</summary>
{{ finding_table(v.findings[v.detailed:], false) }}
</details>
{% endif %}
{% if v.acc_at_1 is not none %}
<p class="note">Against the ground truth
{%- if v.ground_truth %} (“{{ v.ground_truth.a }}” in A, “{{ v.ground_truth.b }}” in B){% endif %}:
the top finding scores {{ v.acc_at_1|num(2) }} (Acc@1) and the best of the top five {{ v.acc_at_5|num(2) }} (Acc@5),
on a scale where 1 is a full match. Judge: {{ v.judge_backend or "default" }}.</p>
{% endif %}
{% else %}
<p class="note">This analysis produced no findings.</p>
{% endif %}
</section>

<section id="evidence">
<h2>Evidence per finding</h2>
<p class="lede">For each of the top {{ v.detailed }} findings: how the scores of the two sets are spread, the images
that match the finding most and least, and, when the finding came from a zoomed look, the region that was cropped.</p>
{% for f in v.findings[:v.detailed] %}
<article class="finding" id="finding-{{ f.rank }}">
  <h3>{{ f.rank }}. {{ f.text }}</h3>
  <p class="plain">{{ plain_words(f) }}</p>
  <div class="cols">
    <figure>
      {{ f.histogram_svg|safe }}
      <figcaption class="legend"><span><i style="background: var(--a)"></i>Set A</span>
        <span><i style="background: var(--b)"></i>Set B</span>
        Share of each set's images at each score; dashed lines are the sets' means.</figcaption>
    </figure>
    <dl class="stats">
      <dt>AUROC</dt><dd>{{ f.auroc|num(3) }} ({{ f.ci|interval }})</dd>
      <dt>p (permutation)</dt><dd>{{ f.p_value|pvalue }}</dd>
      <dt>q (all findings)</dt><dd>{{ f.q_value|pvalue }}</dd>
      <dt>Mean score, A</dt><dd>{{ f.mean_a|num(4) }}</dd>
      <dt>Mean score, B</dt><dd>{{ f.mean_b|num(4) }}</dd>
      <dt>Welch t</dt><dd>{{ f.t_statistic|num(2) }} (p {{ f.t_p_value|pvalue }})</dd>
      {% if f.effect_size is not none %}
      <dt>Effect size (Cohen’s d)</dt><dd>{{ f.effect_size|num(2) }}</dd>
      {% endif %}
      {% if f.specific_auroc is not none %}
      <dt>Specific AUROC</dt><dd>{{ f.specific_auroc|num(3) }} ({{ f.specific_ci|interval }})</dd>
      <dt>q (specificity)</dt><dd>{{ f.specific_q_value|pvalue }}</dd>
      <dt>Verdict</dt><dd>{% if f.supported %}<span class="supported">supported</span>{% else %}<span
        class="unsupported">{{ f.support }}</span>{% endif %}</dd>
      {% endif %}
      {% if f.chexzero_auroc is not none %}
      <dt>AUROC, finding vs “no …”</dt><dd>{{ f.chexzero_auroc|num(3) }}</dd>
      {% endif %}
    </dl>
  </div>
  {% if f.most %}
  <h4>Images that match “{{ f.text }}” most</h4>
  <div class="gallery">{% for t in f.most %}{{ thumb(t) }}{% endfor %}</div>
  {% endif %}
  {% if f.least %}
  <h4>Images that match it least</h4>
  <div class="gallery">{% for t in f.least %}{{ thumb(t) }}{% endfor %}</div>
  {% endif %}
  {% if f.searches %}
  <h4>Zoomed crops that led to this finding</h4>
  {% for s in f.searches %}{{ search_block(s) }}{% endfor %}
  {% endif %}
  {% if f.looks %}
  <h4>Where the next iteration zoomed in on it</h4>
  {% for s in f.looks %}{{ search_block(s) }}{% endfor %}
  {% endif %}
  {% if not f.searches and not f.looks %}
  <p class="note">Proposed from whole images; no zoomed crop was involved.</p>
  {% endif %}
</article>
{% endfor %}
</section>

<section id="history">
<h2>How the search went, iteration by iteration</h2>
<p class="lede">Each iteration proposes findings from samples of both sets, ranks them, and passes its best ones to the
next, which may first zoom into the region where they show.</p>
{% if v.history_svg %}
<figure>{{ v.history_svg|safe }}
<figcaption>AUROC of each iteration's top five findings; the large dot is the best.</figcaption></figure>
{% endif %}
{% for it in v.iterations %}
<div class="iteration">
  <h3>Iteration {{ it.index }}</h3>
  {% if it.feedback %}
  <h4>Started from the previous iteration's best</h4>
  <ol>{% for text, auroc in it.feedback %}
    <li>{{ text }} <span class="num">(AUROC {{ auroc|num(3) }})</span></li>
  {% endfor %}</ol>
  {% endif %}
  {% if it.searches %}
  <h4>Zoomed into the regions of the previous best findings</h4>
  <table class="searches"><thead><tr><th>Finding</th><th>Region of each X-ray (0–1 from left and top)</th>
  <th>Chosen by</th><th>Crops (A above B)</th></tr></thead><tbody>
  {% for s in it.searches %}
  <tr><td>{{ s.finding }}</td>
  <td class="num">{% if s.whole_image %}the whole X-ray{% else %}x {{ s.box.x0|num(2) }}–{{ s.box.x1|num(2) }},
  y {{ s.box.y0|num(2) }}–{{ s.box.y1|num(2) }}{% endif %}</td>
  <td>{{ backend_short.get(s.backend, s.backend) }}</td>
  <td>{% if s.thumb_url %}<img class="mini" src="{{ s.thumb_url }}" alt="zoomed crops" loading="lazy">
  {%- endif %}</td></tr>
  {% endfor %}
  </tbody></table>
  {% endif %}
  <h4>Proposed</h4>
  <p>{{ it.rounds|length }} round{{ "" if it.rounds|length == 1 else "s" }} of proposals
  ({{ it.rounds|map(attribute="proposed")|map("length")|sum }} findings),
  {{ it.deduplicated }} left after removing duplicates.</p>
  {% for r in it.rounds %}
  <details><summary>Round {{ r.round }}: {{ r.proposed|length }} findings from
  {{ r.sample_a|length }} + {{ r.sample_b|length }} sampled images</summary>
  <ul>{% for p in r.proposed %}<li>{{ p }}</li>{% endfor %}</ul></details>
  {% endfor %}
  <h4>Ranked best</h4>
  <ol>{% for text, auroc in it.ranked[:5] %}
    <li>{{ text }} <span class="num">(AUROC {{ auroc|num(3) }})</span></li>
  {% endfor %}</ol>
  {% if it.acc_at_1 is not none %}
  <p>Against the ground truth: Acc@1 {{ it.acc_at_1|num(2) }}, Acc@5 {{ it.acc_at_5|num(2) }}.</p>
  {% endif %}
</div>
{% endfor %}
</section>

<section id="settings">
<h2>Settings and notes</h2>
<p class="lede">Proposer: {{ v.proposer or "(not recorded)" }}. Scores: {{ v.embedding_model or "(not recorded)" }}.</p>
{% if v.notes %}
<h4>What had to be repaired, retried or skipped</h4>
<ul class="notes">{% for n in v.notes %}<li>{{ n }}</li>{% endfor %}</ul>
{% else %}
<p class="note">Nothing had to be repaired, retried or skipped.</p>
{% endif %}
<details><summary>All settings ({{ v.config_rows|length }})</summary>
<table class="config"><tbody>
{% for key, value in v.config_rows %}<tr><td>{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
</tbody></table>
</details>
</section>
<footer>RadDiff · evidence report for analysis {{ v.analysis_id }} ·
the numbers are from the analysis's stored result.</footer>
</main>
</body>
</html>
"""

THUMB = """<figure class="thumb {{ t.group|lower }}">
<img src="{{ t.url }}" alt="set {{ t.group }} image" loading="lazy">
<figcaption>Set {{ t.group }}{% if t.score is not none %} · {{ t.score|num(4) }}{% endif %}</figcaption></figure>"""

SEARCH = """{% if s.whole_image %}
<p class="note">Looking for “{{ s.finding }}”{% if s.auroc is not none %} (AUROC {{ s.auroc|num(3) }} then){% endif %}:
no smaller region stood out, so the whole X-ray of {{ s.crops_a }} images of A and {{ s.crops_b }} of B was used.</p>
{% else %}
<div class="search">
  {% if s.context_url %}
  <figure><span class="boxed"><img src="{{ s.context_url }}" alt="an image of set A with the searched region">
  <span class="box" style="left: {{ pct(s.box.x0) }}; top: {{ pct(s.box.y0) }};
    width: {{ pct(s.box.x1 - s.box.x0) }}; height: {{ pct(s.box.y1 - s.box.y0) }}"></span></span>
  <figcaption>The region, on an image of set A</figcaption></figure>
  {% endif %}
  <figure class="zoom">{% if s.grid_url %}<img src="{{ s.grid_url }}" alt="zoomed crops of the region">{% endif %}
  <figcaption>Looking for “{{ s.finding }}”{% if s.auroc is not none %} (AUROC {{ s.auroc|num(3) }} then){% endif %}:
  {{ region_words(s) }}, cut from {{ s.crops_a }} images of A (top rows) and {{ s.crops_b }} of B (bottom rows);
  region chosen by {{ backend_words[s.backend] if s.backend in backend_words else s.backend }}.</figcaption></figure>
</div>
{% endif %}"""

STATUS = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
<title>{{ heading }} · RadDiff</title>
<style>{{ style }}</style>
</head>
<body>
<header class="top"><div class="inner"><h1>{{ heading }}</h1>{% if name %}<p>{{ name }}</p>{% endif %}</div></header>
<main>
<p class="note" style="margin-top: 24px">{{ message }}</p>
{% if refresh %}<p class="lede">This page reloads itself every {{ refresh }} seconds.</p>{% endif %}
</main>
</body>
</html>
"""

package analyzer

import (
	"strings"
	"testing"
)

// twin is an unsafe program that must get a finding of rule at line at
// medium or higher (the codesec oracle's bar), and its safe twin
// (validated, parameterised or escaped) that must get none at that bar.
type twin struct {
	name   string
	rule   string
	line   int
	unsafe string
	safe   string
}

func runTwins(t *testing.T, twins []twin) {
	t.Helper()
	a := newAnalyzer(t)
	analyze := func(t *testing.T, src string) Result {
		t.Helper()
		res, err := a.Analyze([]byte(strings.ReplaceAll(src, "\t", "    ")), "python")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Parsed {
			t.Fatalf("test source does not parse: %v\n%s", res.ParseErrors, src)
		}
		return res
	}
	for _, c := range twins {
		t.Run(c.name, func(t *testing.T) {
			found := false
			for _, f := range analyze(t, c.unsafe).AtLeast(Medium) {
				found = found || (f.RuleID == c.rule && f.Line == c.line)
			}
			if !found {
				t.Errorf("unsafe: %s not reported at line %d at medium+; findings: %+v", c.rule, c.line, analyze(t, c.unsafe).Findings)
			}
			for _, f := range analyze(t, c.safe).AtLeast(Medium) {
				if f.RuleID == c.rule {
					t.Errorf("safe twin: %s reported at line %d (%s): %s", c.rule, f.Line, f.Severity, f.Snippet)
				}
			}
		})
	}
}

// TestParameterTaintTwins treats function parameters as untrusted, the
// shape generated code takes (def handler(user_path): ...).
func TestParameterTaintTwins(t *testing.T) {
	runTwins(t, []twin{
		{"os.system quoted", "os-system-injection", 3,
			"import os\ndef ping(host):\n\tos.system('ping -c 1 ' + host)\n",
			"import os, shlex\ndef ping(host):\n\tos.system('ping -c 1 ' + shlex.quote(host))\n"},
		{"os.system allow-listed", "os-system-injection", 3,
			"import os\ndef play(track):\n\tos.system(f'mpg123 {track}.mp3')\n",
			"import os\nTRACKS = {'intro', 'outro'}\ndef play(track):\n\tif track not in TRACKS:\n\t\traise ValueError(track)\n\tos.system(f'mpg123 {track}.mp3')\n"},
		{"subprocess shell", "subprocess-shell-injection", 3,
			"import subprocess\ndef ls(d):\n\treturn subprocess.run(f'ls -l {d}', shell=True, capture_output=True)\n",
			"import subprocess\ndef ls(d):\n\treturn subprocess.run(['ls', '-l', '--', d], capture_output=True)\n"},
		{"subprocess split string", "subprocess-user-command", 3,
			"import shlex, subprocess\ndef log(ref):\n\treturn subprocess.run(shlex.split(f'git log {ref}'))\n",
			"import subprocess\ndef log(ref):\n\treturn subprocess.run(['git', 'log', '--', ref])\n"},
		{"os.popen", "os-popen-injection", 3,
			"import os\ndef count(name):\n\treturn os.popen('wc -l ' + name).read()\n",
			"import os, shlex\ndef count(name):\n\treturn os.popen('wc -l ' + shlex.quote(name)).read()\n"},
		{"path join without containment", "path-traversal", 5,
			"import os\nBASE = '/srv/files'\ndef read(name):\n\tpath = os.path.join(BASE, name)\n\twith open(path) as f:\n\t\treturn f.read()\n",
			"import os\nBASE = '/srv/files'\ndef read(name):\n\tpath = os.path.realpath(os.path.join(BASE, name))\n\tif not path.startswith(BASE + os.sep):\n\t\traise ValueError(name)\n\twith open(path) as f:\n\t\treturn f.read()\n"},
		{"path formatted", "path-traversal", 3,
			"import os\ndef remove(user):\n\tos.remove('/var/data/' + user + '.json')\n",
			"import os\nfrom werkzeug.utils import secure_filename\ndef remove(user):\n\tos.remove('/var/data/' + secure_filename(user) + '.json')\n"},
		{"pathlib join", "path-traversal", 4,
			"from pathlib import Path\nBASE = Path('/srv/files')\ndef read(name):\n\treturn (BASE / name).read_text()\n",
			"from pathlib import Path\nBASE = Path('/srv/files')\ndef read(name):\n\tp = (BASE / name).resolve()\n\tif not p.is_relative_to(BASE):\n\t\traise ValueError(name)\n\treturn p.read_text()\n"},
		{"sql formatted", "sql-injection", 3,
			"def find(conn, name):\n\tcur = conn.cursor()\n\tcur.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n\treturn cur.fetchall()\n",
			"def find(conn, name):\n\tcur = conn.cursor()\n\tcur.execute('SELECT * FROM users WHERE name = ?', (name,))\n\treturn cur.fetchall()\n"},
		{"xpath formatted", "xpath-injection", 2,
			"def user(tree, name):\n\treturn tree.xpath(f\"//user[@name='{name}']\")\n",
			"def user(tree, name):\n\treturn tree.xpath('//user[@name=$n]', n=name)\n"},
		{"nosql caller filter", "nosql-injection", 3,
			"import json\ndef search(db, query):\n\treturn list(db.users.find(json.loads(query)))\n",
			"def search(db, name):\n\treturn list(db.users.find({'name': str(name)}))\n"},
		{"nosql where", "nosql-injection", 2,
			"def search(db, name):\n\treturn db.users.find({'$where': \"this.name == '\" + name + \"'\"})\n",
			"def search(db, name):\n\treturn db.users.find({'$where': 'this.active == true', 'name': str(name)})\n"},
		{"ssrf caller url", "ssrf", 3,
			"import requests\ndef fetch(url):\n\treturn requests.get(url, timeout=5).text\n",
			"import requests\nfrom urllib.parse import urlparse\nALLOWED_HOSTS = {'api.example.com'}\ndef fetch(url):\n\thost = urlparse(url).hostname\n\tif host not in ALLOWED_HOSTS:\n\t\traise ValueError(url)\n\treturn requests.get(url, timeout=5).text\n"},
		{"ssrf host from caller", "ssrf", 3,
			"import requests\ndef item(host, item_id):\n\treturn requests.get(f'https://{host}/items/{item_id}', timeout=5).json()\n",
			"import requests\ndef item(item_id):\n\treturn requests.get(f'https://api.example.com/items/{item_id}', timeout=5).json()\n"},
		{"urlopen", "ssrf", 3,
			"from urllib.request import urlopen\ndef get(url):\n\twith urlopen(url) as r:\n\t\treturn r.read()\n",
			"from urllib.request import urlopen\nBASE = 'https://api.example.com/'\ndef get(path):\n\twith urlopen(BASE + path) as r:\n\t\treturn r.read()\n"},
		{"regex from caller", "regex-injection", 3,
			"import re\ndef has_word(word, text):\n\treturn re.search(word, text) is not None\n",
			"import re\ndef has_word(word, text):\n\treturn re.search(re.escape(word), text) is not None\n"},
		{"regex built from caller", "regex-injection", 4,
			"import re\ndef starts(prefix, lines):\n\tpat = '^' + prefix + '.*'\n\treturn [l for l in lines if re.match(pat, l)]\n",
			"import re\ndef starts(prefix, lines):\n\tpat = '^' + re.escape(prefix) + '.*'\n\treturn [l for l in lines if re.match(pat, l)]\n"},
		{"response header", "header-injection", 2,
			"def set_lang(resp, lang):\n\tresp.headers['Content-Language'] = lang\n\treturn resp\n",
			"LANGS = {'en', 'fr'}\ndef set_lang(resp, lang):\n\tif lang not in LANGS:\n\t\tlang = 'en'\n\tresp.headers['Content-Language'] = lang\n\treturn resp\n"},
		{"send_header", "header-injection", 4,
			"class H:\n\tdef redirect(self, target):\n\t\tself.send_response(302)\n\t\tself.send_header('Location', target)\n",
			"class H:\n\tdef redirect(self, target):\n\t\tself.send_response(302)\n\t\tself.send_header('Location', target.replace('\\r', '').replace('\\n', ''))\n"},
		{"log line", "log-injection", 3,
			"import logging\ndef login_failed(user):\n\tlogging.warning(f'login failed for {user}')\n",
			"import logging\ndef login_failed(user):\n\tlogging.warning('login failed for %r', user)\n"},
		{"logger repr", "log-injection", 4,
			"import logging\nlog = logging.getLogger(__name__)\ndef login_failed(user):\n\tlog.info('login failed for ' + user)\n",
			"import logging\nlog = logging.getLogger(__name__)\ndef login_failed(user):\n\tlog.info(f'login failed for {user!r}')\n"},
		{"html built", "xss-html-built", 2,
			"def greet(name):\n\treturn f'<h1>Hello {name}</h1>'\n",
			"import html\ndef greet(name):\n\treturn f'<h1>Hello {html.escape(name)}</h1>'\n"},
		{"html concatenated", "xss-html-built", 3,
			"def comment(text, author):\n\tcount = len(text)\n\treturn '<p class=\"c\">' + text + '</p><i>' + author + ' (' + str(count) + ')</i>'\n",
			"from markupsafe import escape\ndef comment(text, author):\n\tcount = len(text)\n\treturn '<p class=\"c\">' + escape(text) + '</p><i>' + escape(author) + ' (' + str(count) + ')</i>'\n"},
		{"explicit sh -c", "subprocess-shell-injection", 3,
			"import subprocess\ndef run(script):\n\tsubprocess.run(['sh', '-c', 'cd /srv && ' + script])\n",
			"import subprocess, shlex\ndef run(script):\n\tsubprocess.run(['sh', '-c', 'cd /srv && ls ' + shlex.quote(script)])\n"},
		{"upload saved under a joined name", "path-traversal", 4,
			"import os\nUPLOADS = '/srv/uploads'\ndef store(upload, filename):\n\tupload.save(os.path.join(UPLOADS, filename))\n",
			"import os\nfrom werkzeug.utils import secure_filename\nUPLOADS = '/srv/uploads'\ndef store(upload, filename):\n\tupload.save(os.path.join(UPLOADS, secure_filename(filename)))\n"},
		{"urlretrieve", "ssrf", 3,
			"import urllib.request\ndef download(url, dest):\n\turllib.request.urlretrieve(url, dest)\n",
			"import urllib.request\ndef download(name, dest):\n\turllib.request.urlretrieve('https://files.example.com/' + name, dest)\n"},
		{"pool request", "ssrf", 4,
			"import urllib3\nhttp = urllib3.PoolManager()\ndef get(url):\n\treturn http.request('GET', url)\n",
			"import urllib3\nhttp = urllib3.PoolManager()\ndef get(item):\n\treturn http.request('GET', f'https://api.example.com/v1/{item}')\n"},
		{"redirect to caller's url", "open-redirect", 3,
			"from flask import redirect\ndef back(next_url):\n\treturn redirect(next_url)\n",
			"from flask import redirect\ndef back(next_url):\n\tif not next_url.startswith('/') or next_url.startswith('//'):\n\t\tnext_url = '/'\n\treturn redirect(next_url)\n"},
		{"ldap filter", "ldap-injection", 3,
			"import ldap\ndef find(conn, name):\n\treturn conn.search_s('dc=example', ldap.SCOPE_SUBTREE, f'(uid={name})')\n",
			"import ldap\nfrom ldap.filter import escape_filter_chars\ndef find(conn, name):\n\treturn conn.search_s('dc=example', ldap.SCOPE_SUBTREE, f'(uid={escape_filter_chars(name)})')\n"},
		{"template source", "template-injection", 3,
			"from flask import render_template_string\ndef page(body):\n\treturn render_template_string(body)\n",
			"from flask import render_template_string\ndef page(body):\n\treturn render_template_string('<p>{{ body }}</p>', body=body)\n"},
	})
}

// TestParameterTaintLimits pins down what parameter taint does not flag:
// a function whose contract is to act on the path or URL it is given, and
// values that only select among constants.
func TestParameterTaintLimits(t *testing.T) {
	runTwins(t, []twin{
		{"constant choice in shell", "os-system-injection", 4,
			"import os\ndef upload(target):\n\tassert target\n\tos.system('twine upload -r %s' % target)\n",
			"import os\ndef upload(production=False):\n\ttarget = 'pypi' if production else 'test'\n\tos.system('twine upload -r %s' % target)\n"},
		{"int sanitises shell", "os-system-injection", 3,
			"import os\ndef nap(n):\n\tos.system('sleep %s' % n)\n",
			"import os\ndef nap(n):\n\tos.system('sleep %d' % int(n))\n"},
	})
	runCases(t, []ruleCase{
		{"pathlib on the caller's own path", "from pathlib import Path\ndef touch(target):\n\tp = Path(target)\n\tp.touch()\n", "path-traversal", 0, 0},
		{"open the caller's own path", "def load(path):\n\twith open(path) as f:\n\t\treturn f.read()\n", "path-traversal", 0, 0},
		{"len check is no validation", "import os\ndef run(cmd):\n\tif len(cmd) == 0:\n\t\treturn\n\tos.system(cmd)\n", "os-system-injection", 5, Medium},
		{"loop variable check does not validate the string", "import os\ndef run(s):\n\tfor ch in s:\n\t\tif ch in 'abc':\n\t\t\tpass\n\tos.system(s)\n", "os-system-injection", 6, Medium},
		{"lazy log arguments", "import logging\ndef f(user):\n\tlogging.info('user %s', user)\n", "log-injection", 0, 0},
		{"html from a number", "def row(n):\n\treturn '<td>' + str(int(n)) + '</td>'\n", "xss-html-built", 0, 0},
		{"comparison text is not html", "def cmp(a):\n\treturn 'a < b means ' + a\n", "xss-html-built", 0, 0},
		{"regex on the text only", "import re\ndef digits(text):\n\treturn re.findall(r'\\d+', text)\n", "regex-injection", 0, 0},
		{"mongo filter literal", "def get(db, uid):\n\treturn db.users.find_one({'_id': uid})\n", "nosql-injection", 0, 0},
		{"str.find is not mongo", "def pos(text, sub):\n\treturn text.find(sub)\n", "nosql-injection", 0, 0},
	})
}

// TestWeakRandomSeverity: random is medium when it makes a secret-shaped
// value (a token, a password, a random string over an alphabet) and low
// when it drives a shuffle or a simulation.
func TestWeakRandomSeverity(t *testing.T) {
	runCases(t, []ruleCase{
		{"random string helper", "import random, string\ndef random_string(n):\n\treturn ''.join(random.choice(string.ascii_uppercase + string.digits) for _ in range(n))\n", "weak-prng-security", 3, Medium},
		{"alphabet from parameter default", "import random\nfrom string import ascii_letters, digits\ndef rnd(n, chars=ascii_letters + digits):\n\treturn ''.join(random.choice(chars) for _ in range(n))\n", "weak-prng-security", 4, Medium},
		{"alphabet in a local", "import random, string\ndef code():\n\tsymbols = string.ascii_letters + ' ' * 3\n\treturn ''.join([random.choice(symbols) for _ in range(8)])\n", "weak-prng-security", 4, Medium},
		{"sample of letters", "import random, string\nname = ''.join(random.sample(string.ascii_uppercase * 6, 6))\n", "weak-prng-security", 2, Medium},
		{"shuffle is low", "import random\ndef deal(cards):\n\trandom.shuffle(cards)\n\treturn cards\n", "weak-prng-security", 0, 0},
		{"join of sampled words is not a token", "import random\ndef pick(words):\n\treturn ' '.join(random.sample(words, 3))\n", "weak-prng-security", 0, 0},
		{"choice outside join", "import random\ndef move():\n\treturn random.choice('RPS')\n", "weak-prng-security", 0, 0},
		{"system random is fine", "import random, string\nrng = random.SystemRandom()\ntok = ''.join(rng.choice(string.ascii_letters) for _ in range(20))\n", "weak-prng-security", 0, 0},
		{"upper-case seed constant", "import random\nrandom.seed(SEED)\n", "fixed-prng-seed", 2, Medium},
		{"seed from a parameter", "import random\ndef init(seed):\n\trandom.seed(seed)\n", "fixed-prng-seed", 0, 0},
		{"shelve is pickle", "import shelve\ndb = shelve.open('cache.db')\ndb.close()\n", "shelve-deserialization", 2, Medium},
	})
}

// TestFragmentRepair: code cut out of a file (both ends inside docstrings)
// or truncated mid-call still gets its findings.
func TestFragmentRepair(t *testing.T) {
	a := newAnalyzer(t)
	cases := []struct {
		name, src, rule string
		line            int
	}{
		{"starts and ends inside docstrings",
			"    Returns the table.\n    \"\"\"\n    cursor.execute('SELECT * FROM {}'.format(table))\n    return cursor\n\ndef other():\n    \"\"\"Reads a file.\n\n    Args:\n", "sql-injection", 3},
		{"truncated call",
			"for name, new in items:\n    exec(\n        \"{0} = {1}\".format(\n            name,\n            new,\n", "exec-injection", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := a.Analyze([]byte(c.src), "python")
			if err != nil {
				t.Fatal(err)
			}
			if res.Parsed {
				t.Fatalf("fragment should be reported as not parsing")
			}
			for _, f := range res.AtLeast(Medium) {
				if f.RuleID == c.rule && f.Line == c.line {
					return
				}
			}
			t.Errorf("%s not found at line %d: %+v", c.rule, c.line, res.Findings)
		})
	}
}

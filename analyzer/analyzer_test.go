package analyzer

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// ruleCase expects rule to fire at line (with at least severity sev), or
// not to fire anywhere when line is 0.
type ruleCase struct {
	name string
	src  string
	rule string
	line int
	sev  Severity
}

func runCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	a := newAnalyzer(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.ReplaceAll(c.src, "\t", "    ")
			res, err := a.Analyze([]byte(src), "python")
			if err != nil {
				t.Fatal(err)
			}
			if !res.Parsed {
				t.Fatalf("test source does not parse: %v", res.ParseErrors)
			}
			var got []Finding
			for _, f := range res.Findings {
				if f.RuleID == c.rule {
					got = append(got, f)
				}
			}
			if c.line == 0 {
				if len(got) > 0 {
					t.Errorf("%s should not fire, got %+v", c.rule, got)
				}
				return
			}
			for _, f := range got {
				if f.Line == c.line {
					if f.Severity < c.sev {
						t.Errorf("%s at line %d: severity %s, want >= %s", c.rule, c.line, f.Severity, c.sev)
					}
					return
				}
			}
			t.Errorf("%s did not fire at line %d; findings: %+v", c.rule, c.line, res.Findings)
		})
	}
}

func TestImportResolution(t *testing.T) {
	runCases(t, []ruleCase{
		{"alias module", "import os as o\ndef f(x):\n\to.system(x)\n", "os-system-injection", 3, Medium},
		{"from import alias", "from subprocess import call as c\ndef f(x):\n\tc(x, shell=True)\n", "subprocess-shell-injection", 3, Medium},
		{"from import", "from os import system\nsystem('ls ' + input())\n", "os-system-injection", 2, High},
		{"star import", "from os import *\ndef f(x):\n\tpopen(x)\n", "os-popen-injection", 3, Medium},
		{"dotted import", "import xml.etree.ElementTree as ET\nET.fromstring(data)\n", "xml-external-entities", 2, Medium},
		{"from package import module", "from Crypto.Cipher import AES\nc = AES.new(k, AES.MODE_ECB)\n", "weak-cipher-mode", 2, Medium},
		{"unrelated system", "import platform\nplatform.system()\n", "os-system-injection", 0, 0},
		{"other module named call", "from mylib import call\ncall(x, shell=True)\n", "subprocess-shell-injection", 0, 0},
		{"local def shadows eval", "def eval(s):\n\treturn s\neval(x)\n", "eval-injection", 0, 0},
	})
}

func TestTaintFlow(t *testing.T) {
	runCases(t, []ruleCase{
		{"param to sql via fstring", "def q(cur, name):\n\tsql = f\"SELECT * FROM t WHERE n = '{name}'\"\n\tcur.execute(sql)\n", "sql-injection", 3, High},
		{"sql via format", "def q(cur, n):\n\tcur.execute('SELECT {}'.format(n))\n", "sql-injection", 2, High},
		{"sql via percent", "def q(cur, n):\n\ts = 'SELECT %s' % n\n\tcur.execute(s)\n", "sql-injection", 3, High},
		{"sql parameterised", "def q(cur, n):\n\tcur.execute('SELECT * FROM t WHERE n = %s', (n,))\n", "sql-injection", 0, 0},
		{"sql constant concat", "cur.execute('SELECT ' + 'a FROM t')\n", "sql-injection", 0, 0},
		{"input to open", "name = input()\npath = '/srv/' + name\nopen(path).close()\n", "path-traversal", 3, High},
		{"request to open", "from flask import request\ndef v():\n\tfn = request.args.get('f')\n\twith open(os.path.join('/d', fn)) as fh:\n\t\treturn fh.read()\n", "path-traversal", 4, High},
		{"basename sanitizes", "from flask import request\ndef v():\n\tfn = os.path.basename(request.args['f'])\n\twith open(fn) as fh:\n\t\treturn fh.read()\n", "path-traversal", 0, 0},
		{"param to open is not user input", "def load(p):\n\twith open(p) as f:\n\t\treturn f.read()\n", "path-traversal", 0, 0},
		{"argv to ssrf", "import sys, requests\nurl = sys.argv[1]\nrequests.get(url, timeout=5)\n", "ssrf", 3, High},
		{"route param to ssrf", "@app.route('/p/<u>')\ndef p(u):\n\treturn requests.get('http://' + u, timeout=3).text\n", "ssrf", 3, High},
		{"constant url", "import requests\nrequests.get('https://example.com', timeout=5)\n", "ssrf", 0, 0},
		{"input to shell", "import subprocess\ncmd = 'ls ' + input()\nsubprocess.run(cmd, shell=True)\n", "subprocess-shell-injection", 3, High},
		{"shell constant", "import subprocess\nsubprocess.run('ls -l', shell=True)\n", "subprocess-shell-injection", 0, 0},
		{"int sanitizes", "import os\nn = int(input())\nos.system('sleep %d' % n)\n", "os-system-injection", 3, Low},
		{"tuple unpacking", "def f(a):\n\tx, y = a, 1\n\teval(x)\n", "eval-injection", 3, Medium},
		{"eval constant via name", "code = '1+1'\neval(code)\n", "eval-injection", 0, 0},
	})
}

func TestResourceLeaks(t *testing.T) {
	runCases(t, []ruleCase{
		{"with open", "with open('a') as f:\n\tprint(f.read())\n", "resource-leak", 0, 0},
		{"try finally close", "f = open('a')\ntry:\n\tdata = f.read()\nfinally:\n\tf.close()\n", "resource-leak", 0, 0},
		{"open in try, close in finally", "def g():\n\tf = None\n\ttry:\n\t\tf = open('a')\n\t\treturn f.read()\n\tfinally:\n\t\tif f:\n\t\t\tf.close()\n", "resource-leak", 0, 0},
		{"returned handle", "def g(p):\n\tf = open(p)\n\treturn f\n", "resource-leak", 0, 0},
		{"returned directly", "def g(p):\n\treturn open(p, 'rb')\n", "resource-leak", 0, 0},
		{"stored on self", "class C:\n\tdef __init__(self):\n\t\tself.f = open('log', 'a')\n", "resource-leak", 0, 0},
		{"closing wrapper", "import contextlib, urllib.request\nwith contextlib.closing(urllib.request.urlopen(u)) as r:\n\tr.read()\n", "resource-leak", 0, 0},
		{"enter_context", "def g(stack, p):\n\tf = stack.enter_context(open(p))\n\treturn f\n", "resource-leak", 0, 0},
		{"handle used in with", "f = open('a')\nwith f:\n\tf.read()\n", "resource-leak", 0, 0},
		{"close on next statement", "f = open('a', 'w')\nf.close()\n", "resource-leak", 0, 0},
		{"never closed", "def g(p):\n\tf = open(p)\n\tdata = f.read()\n\treturn data\n", "resource-leak", 2, Medium},
		{"closed only on success path", "f = open('a', 'w')\nf.write('x')\nf.close()\n", "resource-leak", 1, Medium},
		{"chained read", "data = open('a').read()\n", "resource-leak", 1, Medium},
		{"passed to json.load", "import json\ncfg = json.load(open('c.json'))\n", "resource-leak", 2, Medium},
		{"socket", "import socket\ns = socket.socket()\ns.connect(('h', 1))\ns.send(b'x')\n", "resource-leak", 2, Medium},
		{"socket in with", "import socket\nwith socket.socket() as s:\n\ts.connect(('h', 1))\n", "resource-leak", 0, 0},
		{"for over open", "for line in open('a'):\n\tprint(line)\n", "resource-leak", 1, Medium},
		{"lock without finally", "lock.acquire()\ncount += 1\nlock.release()\n", "lock-not-released", 1, Medium},
		{"lock with finally", "lock.acquire()\ntry:\n\tcount += 1\nfinally:\n\tlock.release()\n", "lock-not-released", 0, 0},
		{"local def open", "def open(p):\n\treturn p\nx = open('a').upper()\n", "resource-leak", 0, 0},
	})
}

func TestSecretsAndCrypto(t *testing.T) {
	runCases(t, []ruleCase{
		{"password literal", "password = 'hunter22'\n", "hardcoded-credentials", 1, Medium},
		{"api key attr", "client.api_key = \"sk-abc123def\"\n", "hardcoded-credentials", 1, Medium},
		{"dict key", "cfg = {'db_password': 'S3cret!'}\n", "hardcoded-credentials", 1, Medium},
		{"kwarg", "connect(host='h', password='letmein')\n", "hardcoded-credentials", 1, Medium},
		{"empty password", "password = ''\n", "hardcoded-credentials", 0, 0},
		{"placeholder", "API_KEY = '<your-api-key>'\n", "hardcoded-credentials", 0, 0},
		{"env lookup", "import os\npassword = os.environ['PW']\n", "hardcoded-credentials", 0, 0},
		{"password prompt text", "password_prompt = 'Enter password: '\n", "hardcoded-credentials", 0, 0},
		{"short token is not a secret", "token = '('\n", "hardcoded-credentials", 0, 0},
		{"long token", "token = 'ghx7Yz0aa81bQ'\n", "hardcoded-credentials", 1, Medium},
		{"github token string", "headers = {'Authorization': 'token ghp_" + strings.Repeat("a1B2", 9) + "'}\n", "hardcoded-api-token", 1, Medium},
		{"md5", "import hashlib\nh = hashlib.md5(b'x')\n", "weak-hash-md5", 2, Medium},
		{"md5 not for security", "import hashlib\nh = hashlib.md5(b'x', usedforsecurity=False)\n", "weak-hash-md5", 2, Low},
		{"hashlib new sha1", "import hashlib\nh = hashlib.new('sha1')\n", "weak-hash-sha1", 2, Medium},
		{"sha256 fine", "import hashlib\nh = hashlib.sha256(b'x')\n", "weak-hash-sha1", 0, 0},
		{"fixed seed", "import random\nrandom.seed(42)\n", "fixed-prng-seed", 2, Medium},
		{"seed from time", "import random, time\nrandom.seed(time.time())\n", "fixed-prng-seed", 0, 0},
		{"random token", "import random, string\ndef make_token():\n\treturn ''.join(random.choice(string.ascii_letters) for _ in range(16))\n", "weak-prng-security", 3, Medium},
		{"random password var", "import random\npassword = random.randint(1000, 9999)\n", "weak-prng-security", 2, Medium},
		{"random for simulation", "import random\ndef roll():\n\treturn random.randint(1, 6)\n", "weak-prng-security", 0, 0},
		{"random is low", "import random\ndef roll():\n\treturn random.randint(1, 6)\n", "weak-prng", 3, Low},
		{"fixed iv", "iv = b'0000000000000000'\n", "fixed-nonce", 1, Medium},
		{"fixed nonce kwarg", "c = AES.new(k, AES.MODE_GCM, nonce=b'abcdefghijkl')\n", "fixed-nonce", 1, Medium},
		{"random iv", "import os\niv = os.urandom(16)\n", "fixed-nonce", 0, 0},
		{"rsa 1024", "from cryptography.hazmat.primitives.asymmetric import rsa\nk = rsa.generate_private_key(public_exponent=65537, key_size=1024)\n", "weak-key-size", 2, Medium},
		{"rsa 2048", "from cryptography.hazmat.primitives.asymmetric import rsa\nk = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n", "weak-key-size", 0, 0},
		{"des", "from Crypto.Cipher import DES\nc = DES.new(key, DES.MODE_CBC, iv)\n", "weak-cipher", 2, Medium},
		{"hardcoded aes key", "from Crypto.Cipher import AES\nc = AES.new(b'0123456789abcdef', AES.MODE_GCM)\n", "hardcoded-crypto-key", 2, Medium},
		{"private key literal", "KEY = '''-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----'''\n", "hardcoded-private-key", 1, Medium},
	})
}

func TestBanditClasses(t *testing.T) {
	runCases(t, []ruleCase{
		{"verify false", "import requests\nrequests.get(u, verify=False, timeout=3)\n", "tls-verification-disabled", 2, High},
		{"session verify false", "s.post(u, data=d, verify=False)\n", "tls-verification-disabled", 1, High},
		{"unverified context", "import ssl\nctx = ssl._create_unverified_context()\n", "unverified-ssl-context", 2, High},
		{"cert none", "import ssl\nctx.verify_mode = ssl.CERT_NONE\n", "unverified-ssl-context", 2, High},
		{"check_hostname off", "ctx.check_hostname = False\n", "unverified-ssl-context", 1, High},
		{"tls v1", "import ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLSv1)\n", "insecure-tls-version", 2, Medium},
		{"mktemp", "import tempfile\np = tempfile.mktemp()\n", "insecure-temp-file", 2, Medium},
		{"flask debug", "app.run(host='127.0.0.1', debug=True)\n", "flask-debug-mode", 1, Medium},
		{"bind all", "s.bind(('0.0.0.0', 8080))\n", "bind-all-interfaces", 1, Medium},
		{"chmod 777", "import os\nos.chmod(p, 0o777)\n", "permissive-file-permissions", 2, High},
		{"chmod 644", "import os\nos.chmod(p, 0o644)\n", "permissive-file-permissions", 0, 0},
		{"tar extractall", "import tarfile\nwith tarfile.open(p) as t:\n\tt.extractall(dest)\n", "archive-path-traversal", 3, Medium},
		{"tar extractall filter", "import tarfile\nwith tarfile.open(p) as t:\n\tt.extractall(dest, filter='data')\n", "archive-path-traversal", 0, 0},
		{"minidom", "from xml.dom import minidom\ndoc = minidom.parseString(s)\n", "xml-external-entities", 2, Medium},
		{"paramiko autoadd", "import paramiko\nc = paramiko.SSHClient()\nc.set_missing_host_key_policy(paramiko.AutoAddPolicy())\n", "paramiko-auto-add-host-key", 3, Medium},
		{"jinja2 no autoescape", "import jinja2\nenv = jinja2.Environment(loader=l)\n", "jinja2-autoescape-off", 2, Medium},
		{"jinja2 autoescape", "import jinja2\nenv = jinja2.Environment(loader=l, autoescape=True)\n", "jinja2-autoescape-off", 0, 0},
		{"telnet", "import telnetlib\ntn = telnetlib.Telnet(host)\n", "cleartext-telnet", 2, Medium},
		{"ftp", "from ftplib import FTP\nftp = FTP('h')\n", "cleartext-ftp", 2, Medium},
		{"ftp tls", "from ftplib import FTP_TLS\nftp = FTP_TLS('h')\n", "cleartext-ftp", 0, 0},
		{"marshal", "import marshal\nobj = marshal.loads(data)\n", "marshal-deserialization", 2, Medium},
		{"yaml unsafe", "import yaml\nd = yaml.load(s, Loader=yaml.Loader)\n", "yaml-unsafe-load", 2, Medium},
		{"yaml safe", "import yaml\nd = yaml.load(s, Loader=yaml.SafeLoader)\n", "yaml-unsafe-load", 0, 0},
		{"yaml no loader", "import yaml\nd = yaml.load(s)\n", "yaml-unsafe-load", 2, Medium},
		{"assert is low", "def f(user):\n\tassert user.is_admin\n", "assert-used", 2, Low},
		{"exec py2", "exec code in ns\n", "exec-injection", 1, Medium},
		{"pickle user data", "import pickle\nfrom flask import request\nobj = pickle.loads(request.data)\n", "pickle-deserialization", 3, High},
	})
}

func TestAssertSeverityIsLow(t *testing.T) {
	a := newAnalyzer(t)
	res, err := a.Analyze([]byte("def f(u):\n    assert u.admin\n"), "python")
	if err != nil {
		t.Fatal(err)
	}
	if res.Max() != Low || len(res.AtLeast(Medium)) != 0 {
		t.Fatalf("assert should be the only, low, finding: %+v", res.Findings)
	}
}

func TestParseFailureIsNotClean(t *testing.T) {
	a := newAnalyzer(t)
	res, err := a.Analyze([]byte("def f(:\n    return 1\n\nx = = 2\n"), "python")
	if err != nil {
		t.Fatal(err)
	}
	if res.Parsed {
		t.Fatal("broken code reported as parsed")
	}
	if len(res.ParseErrors) == 0 || !strings.Contains(res.ParseErrors[0], "line 1") {
		t.Fatalf("parse errors should name line 1: %v", res.ParseErrors)
	}
	// Findings in a fragment are still reported.
	res, err = a.Analyze([]byte("        os.system(cmd)\n    def g(self):\n        eval(x)\n"), "python")
	if err != nil {
		t.Fatal(err)
	}
	if res.Parsed || len(res.AtLeast(Medium)) < 2 {
		t.Fatalf("fragment: Parsed=%v findings=%+v", res.Parsed, res.Findings)
	}
	// Clean code parses.
	res, err = a.Analyze([]byte("def f(x):\n    return x + 1\n"), "python")
	if err != nil || !res.Parsed || len(res.Findings) != 0 {
		t.Fatalf("clean code: %+v, %v", res, err)
	}
}

func TestUnsupportedLanguage(t *testing.T) {
	a := newAnalyzer(t)
	if _, err := a.Analyze([]byte("int main(){}"), "c"); err == nil {
		t.Fatal("want error for unsupported language")
	}
}

func TestFindingPositions(t *testing.T) {
	a := newAnalyzer(t)
	res, err := a.Analyze([]byte("import os\n\nif x:\n    os.system(cmd)\n"), "python")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 {
		t.Fatalf("want 1 finding, got %+v", res.Findings)
	}
	f := res.Findings[0]
	if f.Line != 4 || f.Column != 5 || f.EndLine != 4 || f.EndColumn != 19 || f.Snippet != "os.system(cmd)" {
		t.Fatalf("position/snippet wrong: %+v", f)
	}
	if f.RuleID != "os-system-injection" || f.CWE[0] != "CWE-78" || f.Message == "" {
		t.Fatalf("metadata wrong: %+v", f)
	}
}

func TestCatalog(t *testing.T) {
	a := newAnalyzer(t)
	rules := a.Rules()
	if len(rules) < 40 {
		t.Fatalf("%d rule classes, want >= 40", len(rules))
	}
	descs := map[string]string{}
	for _, r := range rules {
		if r.Severity < Low || r.Severity > High || len(r.Description) < 80 || r.Fix == "" || r.Message == "" || r.Title == "" {
			t.Errorf("rule %s incomplete: %+v", r.ID, r)
		}
		if other, dup := descs[r.Description]; dup {
			t.Errorf("rules %s and %s share a description", r.ID, other)
		}
		descs[r.Description] = r.ID
	}
	// Rules returns a copy.
	rules[0].CWE[0] = "CWE-0"
	if a.Rules()[0].CWE[0] == "CWE-0" {
		t.Fatal("Rules() exposes internal state")
	}
}

func TestCatalogValidation(t *testing.T) {
	bad := []string{
		"rules: [{id: x, cwe: [CWE-1], severity: huge, title: t, message: m, fix: f, description: d, match: [{call: [eval]}]}]",
		"rules: [{id: x, cwe: [78], severity: low, title: t, message: m, fix: f, description: d, match: [{call: [eval]}]}]",
		"rules: [{id: x, cwe: [CWE-1], severity: low, title: t, message: m, fix: f, description: d, match: [{call: [eval], method: [x]}]}]",
		"rules: [{id: x, cwe: [CWE-1], severity: low, title: t, message: m, fix: f, description: d, match: [{call: [eval], args: [{is: bogus}]}]}]",
		"rules: [{id: x, cwe: [CWE-1], severity: low, title: t, message: m, fix: f, description: d, match: [{string: '('}]}]",
		"rules: [{id: x, cwe: [CWE-1], severity: low, title: t, message: m, fix: f, description: d, match: [{call: [eval]}], extra: 1}]",
		"rules: [{id: x, cwe: [CWE-1], severity: low, title: t, message: m, fix: f, description: d, match: [{build: '<p>'}]}]",
		"rules: [{id: x, cwe: [CWE-1], severity: low, title: t, message: m, fix: f, description: d, match: [{string: 'a', within: [join]}]}]",
		"rules: [{id: x, cwe: [CWE-1], severity: low, title: t, message: m, fix: f, description: d, match: [{call: [eval], target: 'x'}]}]",
	}
	for _, y := range bad {
		if _, err := loadCatalog([]byte(y)); err == nil {
			t.Errorf("accepted invalid catalog: %s", y)
		}
	}
}

func TestSeverity(t *testing.T) {
	for _, s := range []Severity{Low, Medium, High} {
		p, err := ParseSeverity(strings.ToUpper(s.String()))
		if err != nil || p != s {
			t.Errorf("round trip %v: %v %v", s, p, err)
		}
	}
	if _, err := ParseSeverity("critical"); err == nil {
		t.Error("accepted unknown severity")
	}
	r := Result{Findings: []Finding{{Severity: Low}, {Severity: High}, {Severity: Medium}}}
	if r.Max() != High || len(r.AtLeast(Medium)) != 2 || (Result{}).Max() != 0 {
		t.Error("Max/AtLeast wrong")
	}
}

func TestEquivalentCWE(t *testing.T) {
	for _, c := range [][2]string{{"CWE-327", "CWE-328"}, {"cwe-338", "CWE-330"}, {"CWE-312", "CWE-798"}, {"CWE-89", "CWE-89"}} {
		if !EquivalentCWE(c[0], c[1]) {
			t.Errorf("%s ~ %s expected", c[0], c[1])
		}
	}
	if EquivalentCWE("CWE-89", "CWE-78") || EquivalentCWE("CWE-1", "CWE-2") {
		t.Error("unrelated CWEs matched")
	}
}

// TestConcurrentAnalyze runs many goroutines over one Analyzer (run with
// -race) and checks each gets the same result as a serial run.
func TestConcurrentAnalyze(t *testing.T) {
	a := newAnalyzer(t)
	srcs := make([][]byte, 16)
	want := make([]string, len(srcs))
	for i := range srcs {
		srcs[i] = []byte(fmt.Sprintf("import os, pickle\ndef f%d(x):\n    os.system(x)\n    assert x\n    return pickle.loads(x + %d)\n", i, i))
		r, err := a.Analyze(srcs[i], "python")
		if err != nil {
			t.Fatal(err)
		}
		want[i] = fmt.Sprint(r)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				i := (g + k) % len(srcs)
				r, err := a.Analyze(srcs[i], "python")
				if err != nil || fmt.Sprint(r) != want[i] {
					errs <- fmt.Sprintf("goroutine %d file %d: %v %v", g, i, err, r)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestUseAfterClose(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Close() // idempotent, must not double-free
	if _, err := a.Analyze([]byte("x = 1"), "python"); err == nil {
		t.Fatal("Analyze after Close should fail")
	}
}

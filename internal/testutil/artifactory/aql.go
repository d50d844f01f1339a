package artifactory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Bounds on a hostile AQL query.
const (
	maxAQLBytes = 64 << 10
	maxAQLDepth = 32
	maxAQLNodes = 4096
)

// aqlQuery is a parsed `items.find(...)...` query.
type aqlQuery struct {
	domain   string
	criteria map[string]any
	include  []string
	sortDir  string // "$asc" or "$desc"
	sortBy   []string
	offset   int
	limit    int
	hasLimit bool
}

// parseAQL parses the AQL subset the emulator serves (spec §3.4).
func parseAQL(src string) (*aqlQuery, error) {
	if len(src) > maxAQLBytes {
		return nil, fmt.Errorf("query longer than %d bytes", maxAQLBytes)
	}
	p := &aqlParser{s: src}
	q := &aqlQuery{}
	p.ws()
	q.domain = p.ident()
	if q.domain == "" {
		return nil, p.errf("expected a domain such as items")
	}
	first := true
	for {
		p.ws()
		if p.eof() {
			break
		}
		if !p.eat('.') {
			return nil, p.errf("expected '.'")
		}
		p.ws()
		method := p.ident()
		args, err := p.args()
		if err != nil {
			return nil, err
		}
		if first && method != "find" {
			return nil, p.errf("expected find after the domain")
		}
		first = false
		switch method {
		case "find":
			if len(args) > 1 {
				return nil, p.errf("find takes one criteria object")
			}
			q.criteria = map[string]any{}
			if len(args) == 1 {
				m, ok := args[0].(map[string]any)
				if !ok {
					return nil, p.errf("find criteria must be an object")
				}
				q.criteria = m
			}
		case "include":
			for _, a := range args {
				s, ok := a.(string)
				if !ok {
					return nil, p.errf("include takes field names")
				}
				q.include = append(q.include, s)
			}
		case "sort":
			if len(args) != 1 {
				return nil, p.errf("sort takes one object")
			}
			m, ok := args[0].(map[string]any)
			if !ok || len(m) != 1 {
				return nil, p.errf(`sort takes {"$asc"|"$desc": [fields]}`)
			}
			for k, v := range m {
				if k != "$asc" && k != "$desc" {
					return nil, p.errf("unknown sort direction %q", k)
				}
				q.sortDir = k
				list, ok := v.([]any)
				if !ok {
					return nil, p.errf("sort fields must be an array")
				}
				for _, f := range list {
					s, ok := f.(string)
					if !ok || !itemFields[s] {
						return nil, p.errf("cannot sort by %v", f)
					}
					q.sortBy = append(q.sortBy, s)
				}
			}
		case "offset", "limit":
			if len(args) != 1 {
				return nil, p.errf("%s takes one number", method)
			}
			n, ok := args[0].(json.Number)
			v, err := strconv.Atoi(string(n))
			if !ok || err != nil || v < 0 {
				return nil, p.errf("%s must be a non-negative integer", method)
			}
			if method == "offset" {
				q.offset = v
			} else {
				q.limit, q.hasLimit = v, true
			}
		case "distinct":
			if len(args) != 1 {
				return nil, p.errf("distinct takes a boolean")
			}
			if _, ok := args[0].(bool); !ok {
				return nil, p.errf("distinct takes a boolean")
			}
		default:
			return nil, p.errf("unknown method %q", method)
		}
	}
	if first {
		return nil, p.errf("expected .find(...)")
	}
	if err := checkShape(q.criteria, 0, new(int)); err != nil {
		return nil, err
	}
	return q, nil
}

type aqlParser struct {
	s   string
	pos int
}

func (p *aqlParser) eof() bool { return p.pos >= len(p.s) }

func (p *aqlParser) errf(format string, a ...any) error {
	return fmt.Errorf("AQL parse error at offset %d: %s", p.pos, fmt.Sprintf(format, a...))
}

func (p *aqlParser) ws() {
	for p.pos < len(p.s) && unicode.IsSpace(rune(p.s[p.pos])) {
		p.pos++
	}
}

func (p *aqlParser) eat(c byte) bool {
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *aqlParser) ident() string {
	start := p.pos
	for p.pos < len(p.s) && (p.s[p.pos] == '_' || unicode.IsLetter(rune(p.s[p.pos]))) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// args parses "(v1, v2, ...)" where each v is a JSON value.
func (p *aqlParser) args() ([]any, error) {
	p.ws()
	if !p.eat('(') {
		return nil, p.errf("expected '('")
	}
	var out []any
	p.ws()
	if p.eat(')') {
		return out, nil
	}
	for {
		dec := json.NewDecoder(strings.NewReader(p.s[p.pos:]))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, p.errf("bad value: %v", err)
		}
		p.pos += int(dec.InputOffset())
		out = append(out, v)
		p.ws()
		if p.eat(')') {
			return out, nil
		}
		if !p.eat(',') {
			return nil, p.errf("expected ',' or ')'")
		}
		p.ws()
	}
}

func checkShape(v any, depth int, nodes *int) error {
	*nodes++
	if depth > maxAQLDepth || *nodes > maxAQLNodes {
		return errors.New("AQL query nests too deep or is too large")
	}
	switch t := v.(type) {
	case map[string]any:
		for _, c := range t {
			if err := checkShape(c, depth+1, nodes); err != nil {
				return err
			}
		}
	case []any:
		for _, c := range t {
			if err := checkShape(c, depth+1, nodes); err != nil {
				return err
			}
		}
	}
	return nil
}

// itemFields are the item fields the emulator knows, in Artifactory's output order.
var itemFieldOrder = []string{"repo", "path", "name", "type", "size", "created", "created_by", "modified", "modified_by",
	"updated", "depth", "actual_md5", "actual_sha1", "original_md5", "original_sha1", "sha256"}

var itemFields = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range itemFieldOrder {
		m[f] = true
	}
	return m
}()

var defaultFields = []string{"repo", "path", "name", "type", "size", "created", "created_by", "modified", "modified_by", "updated"}

// aqlItem is a file or folder as AQL sees it.
type aqlItem struct {
	*Item
	folder bool
}

func (a aqlItem) field(f string) any {
	switch f {
	case "repo":
		return a.Repo
	case "path":
		return a.Path
	case "name":
		return a.Name
	case "type":
		if a.folder {
			return "folder"
		}
		return "file"
	case "size":
		return a.Size
	case "created":
		return a.Created
	case "modified", "updated":
		return a.Modified
	case "created_by":
		return a.CreatedBy
	case "modified_by":
		return a.ModifiedBy
	case "depth":
		return int64(strings.Count(a.fullPath(), "/") + 1)
	case "actual_md5", "original_md5":
		return a.MD5
	case "actual_sha1", "original_sha1":
		return a.SHA1
	case "sha256":
		return a.SHA256
	}
	return nil
}

type predicate func(aqlItem) bool

// compileCriteria turns a find() object into a predicate; the keys of one object are ANDed.
func compileCriteria(m map[string]any, now time.Time) (predicate, bool, error) {
	var preds []predicate
	mentionsType := false
	for k, v := range m {
		switch {
		case k == "$and" || k == "$or":
			var subs []map[string]any
			switch t := v.(type) {
			case []any:
				for _, s := range t {
					sm, ok := s.(map[string]any)
					if !ok {
						return nil, false, fmt.Errorf("%s takes objects", k)
					}
					subs = append(subs, sm)
				}
			case map[string]any:
				for sk, sv := range t {
					subs = append(subs, map[string]any{sk: sv})
				}
			default:
				return nil, false, fmt.Errorf("%s takes an array", k)
			}
			var ps []predicate
			for _, s := range subs {
				p, mt, err := compileCriteria(s, now)
				if err != nil {
					return nil, false, err
				}
				mentionsType = mentionsType || mt
				ps = append(ps, p)
			}
			or := k == "$or"
			preds = append(preds, func(it aqlItem) bool {
				for _, p := range ps {
					if p(it) == or {
						return or
					}
				}
				return !or
			})
		case strings.HasPrefix(k, "@"):
			key := k[1:]
			cmp, err := compileCompare(v, "", now)
			if err != nil {
				return nil, false, fmt.Errorf("property %s: %w", key, err)
			}
			preds = append(preds, func(it aqlItem) bool {
				for _, pr := range it.Properties {
					if pr.Key == key && cmp(pr.Value) {
						return true
					}
				}
				return false
			})
		case itemFields[k]:
			if k == "type" {
				mentionsType = true
				if s, ok := v.(string); ok && s == "any" {
					continue
				}
			}
			cmp, err := compileCompare(v, k, now)
			if err != nil {
				return nil, false, fmt.Errorf("field %s: %w", k, err)
			}
			field := k
			preds = append(preds, func(it aqlItem) bool { return cmp(it.field(field)) })
		default:
			return nil, false, fmt.Errorf("unknown field %q", k)
		}
	}
	return func(it aqlItem) bool {
		for _, p := range preds {
			if !p(it) {
				return false
			}
		}
		return true
	}, mentionsType, nil
}

// compileCompare builds a comparison of a field value with v (a scalar for $eq, or {op: value}).
func compileCompare(v any, field string, now time.Time) (func(any) bool, error) {
	op, arg := "$eq", v
	if m, ok := v.(map[string]any); ok {
		if len(m) != 1 {
			return nil, errors.New("a comparison takes exactly one operator")
		}
		for k, a := range m {
			op, arg = k, a
		}
	}
	isDate := field == "created" || field == "modified" || field == "updated"
	switch op {
	case "$before", "$last":
		s, ok := arg.(string)
		if !ok || !isDate {
			return nil, fmt.Errorf("%s takes a relative time on a date field", op)
		}
		d, err := relativeTime(s)
		if err != nil {
			return nil, err
		}
		cut := now.Add(-d)
		return func(x any) bool {
			t, _ := x.(time.Time)
			if op == "$last" {
				return t.After(cut)
			}
			return t.Before(cut)
		}, nil
	case "$match", "$nmatch":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("%s takes a string", op)
		}
		re, err := wildcard(s)
		if err != nil {
			return nil, err
		}
		neg := op == "$nmatch"
		return func(x any) bool { return re.MatchString(fmt.Sprint(x)) != neg }, nil
	case "$eq", "$ne", "$gt", "$gte", "$lt", "$lte":
	default:
		return nil, fmt.Errorf("unknown operator %q", op)
	}
	var want any
	switch a := arg.(type) {
	case string:
		want = a
		if isDate {
			t, err := parseAQLTime(a)
			if err != nil {
				return nil, err
			}
			want = t
		}
	case json.Number:
		n, err := a.Int64()
		if err != nil {
			return nil, fmt.Errorf("number %s", a)
		}
		want = n
	case bool:
		want = strconv.FormatBool(a)
	default:
		return nil, fmt.Errorf("cannot compare with %v", arg)
	}
	return func(x any) bool {
		c, ok := compareValues(x, want)
		if !ok {
			return op == "$ne"
		}
		switch op {
		case "$eq":
			return c == 0
		case "$ne":
			return c != 0
		case "$gt":
			return c > 0
		case "$gte":
			return c >= 0
		case "$lt":
			return c < 0
		}
		return c <= 0
	}, nil
}

func compareValues(x, want any) (int, bool) {
	switch w := want.(type) {
	case time.Time:
		t, ok := x.(time.Time)
		if !ok {
			return 0, false
		}
		return t.Compare(w), true
	case int64:
		switch n := x.(type) {
		case int64:
			return cmpInt(n, w), true
		case string:
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0, false
			}
			return cmpInt(v, w), true
		}
		return 0, false
	case string:
		switch n := x.(type) {
		case string:
			return strings.Compare(n, w), true
		case int64:
			v, err := strconv.ParseInt(w, 10, 64)
			if err != nil {
				return 0, false
			}
			return cmpInt(n, v), true
		}
	}
	return 0, false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseAQLTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date %q", s)
}

var relUnits = []struct {
	suffix string
	d      time.Duration
}{{"minutes", time.Minute}, {"months", 30 * 24 * time.Hour}, {"mo", 30 * 24 * time.Hour}, {"years", 365 * 24 * time.Hour},
	{"weeks", 7 * 24 * time.Hour}, {"days", 24 * time.Hour}, {"seconds", time.Second}, {"ms", time.Millisecond},
	{"mi", time.Minute}, {"y", 365 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"s", time.Second}}

func relativeTime(s string) (time.Duration, error) {
	for _, u := range relUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.Atoi(n)
			if err == nil && v >= 0 && v < 100000 {
				return time.Duration(v) * u.d, nil
			}
		}
	}
	return 0, fmt.Errorf("bad relative time %q", s)
}

// wildcard compiles AQL's $match pattern: * any run, ? one character.
func wildcard(s string) (*regexp.Regexp, error) {
	if len(s) > 1024 {
		return nil, errors.New("pattern too long")
	}
	var b strings.Builder
	b.WriteString("^")
	for _, r := range s {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

type aqlCacheEntry struct {
	key   string
	items []aqlItem
}

// serveAQL answers POST /api/search/aql. Any Content-Type is accepted (JFrog's client sends none).
func (e *Emulator) serveAQL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeRESTError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	p := e.restAuth(w, r, false)
	if p == nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAQLBytes+1))
	if err != nil {
		writeRESTError(w, http.StatusBadRequest, "read query: "+err.Error())
		return
	}
	q, err := parseAQL(string(body))
	if err != nil {
		writeRESTError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.domain != "items" {
		writeRESTError(w, http.StatusBadRequest, "the emulator supports only the items domain, not "+q.domain)
		return
	}
	include, withProps, propKeys, err := resolveInclude(q.include)
	if err != nil {
		writeRESTError(w, http.StatusBadRequest, err.Error())
		return
	}
	items, err := e.aqlSearch(q, p)
	if err != nil {
		writeRESTError(w, http.StatusBadRequest, err.Error())
		return
	}
	start := min(q.offset, len(items))
	end := len(items)
	if q.hasLimit {
		end = min(start+q.limit, end)
	}
	page := items[start:end]
	notification := ""
	if e.opts.AQLMaxLimit > 0 && len(page) > e.opts.AQLMaxLimit {
		page = page[:e.opts.AQLMaxLimit]
		notification = "AQL query reached the search hard limit, results are trimmed. Please address configurable limit."
	}
	var buf bytes.Buffer
	buf.WriteString(`{"results":[`)
	for i, it := range page {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeAQLItem(&buf, it, include, withProps, propKeys)
	}
	buf.WriteString(`],"range":`)
	// range.total is the number of results in this response, not the overall count (a real
	// quirk: clients must page until a short page).
	rng := struct {
		StartPos     int    `json:"start_pos"`
		EndPos       int    `json:"end_pos"`
		Total        int    `json:"total"`
		Limit        *int   `json:"limit,omitempty"`
		Notification string `json:"notification,omitempty"`
	}{StartPos: start, EndPos: start + len(page), Total: len(page), Notification: notification}
	if q.hasLimit {
		rng.Limit = &q.limit
	}
	b, _ := marshalCompact(rng)
	buf.Write(b)
	buf.WriteByte('}')
	out := jackson(buf.Bytes())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

// resolveInclude maps .include() to item fields and the properties wanted.
func resolveInclude(inc []string) (fields []string, props bool, propKeys map[string]bool, err error) {
	if len(inc) == 0 {
		return defaultFields, false, nil, nil
	}
	want := map[string]bool{"type": true} // the docs sample shows type even when not included [I]
	for _, f := range inc {
		switch {
		case f == "*":
			for _, k := range itemFieldOrder {
				want[k] = true
			}
		case f == "property.*" || f == "property" || f == "property.key" || f == "property.value":
			props = true
		case strings.HasPrefix(f, "@"):
			props = true
			if propKeys == nil {
				propKeys = map[string]bool{}
			}
			propKeys[f[1:]] = true
		case itemFields[f]:
			want[f] = true
		default:
			return nil, false, nil, fmt.Errorf("unknown field %q in include", f)
		}
	}
	for _, k := range itemFieldOrder {
		if want[k] {
			fields = append(fields, k)
		}
	}
	return fields, props, propKeys, nil
}

func writeAQLItem(buf *bytes.Buffer, it aqlItem, fields []string, withProps bool, propKeys map[string]bool) {
	buf.WriteByte('{')
	first := true
	kv := func(k string, v any) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		b, _ := marshalCompact(k)
		buf.Write(b)
		buf.WriteByte(':')
		b, _ = marshalCompact(v)
		buf.Write(b)
	}
	for _, f := range fields {
		v := it.field(f)
		if t, ok := v.(time.Time); ok {
			v = fmtTime(t)
		}
		if it.folder && (f == "sha256" || strings.HasSuffix(f, "md5") || strings.HasSuffix(f, "sha1")) {
			continue
		}
		kv(f, v)
	}
	if withProps {
		props := []Property{}
		for _, p := range it.Properties {
			if propKeys == nil || propKeys[p.Key] {
				props = append(props, p)
			}
		}
		if len(props) > 0 {
			kv("properties", props)
		}
	}
	buf.WriteByte('}')
}

// aqlSearch returns every matching item in result order. The sorted result of the last query is
// kept until the store changes, so paging through 100k tags does not re-sort on every page.
func (e *Emulator) aqlSearch(q *aqlQuery, p *principal) ([]aqlItem, error) {
	crit, _ := json.Marshal(q.criteria)
	key := fmt.Sprintf("%s|%v|%s|%v", crit, q.sortBy, q.sortDir, p.name)
	e.mu.Lock()
	defer e.mu.Unlock()
	key = fmt.Sprintf("%d|%s", e.gen, key)
	if c := e.aqlCache; c != nil && c.key == key {
		return c.items, nil
	}
	pred, mentionsType, err := compileCriteria(q.criteria, e.opts.Now())
	if err != nil {
		return nil, err
	}
	if !mentionsType {
		// items.find returns files only unless the query asks about type [I]
		inner := pred
		pred = func(it aqlItem) bool { return !it.folder && inner(it) }
	}
	var out []aqlItem
	for phys, st := range e.stores {
		rp := e.repoOfPhysical(phys)
		if rp == nil || !p.canRead(rp.Key) {
			continue
		}
		for _, it := range st.files {
			a := aqlItem{Item: it}
			if pred(a) {
				out = append(out, a)
			}
		}
		if mentionsType {
			for k, f := range st.folders {
				if k == "" {
					continue
				}
				dir, name := path.Split(k)
				dir = strings.TrimSuffix(dir, "/")
				if dir == "" {
					dir = "."
				}
				a := aqlItem{Item: &Item{Repo: phys, Path: dir, Name: name, Created: f.created, Modified: f.modified, CreatedBy: f.by, ModifiedBy: f.by}, folder: true}
				if pred(a) {
					out = append(out, a)
				}
			}
		}
	}
	sortBy := q.sortBy
	desc := q.sortDir == "$desc"
	if len(sortBy) == 0 {
		sortBy, desc = []string{"repo", "path", "name"}, false // deterministic default order [I]
	}
	sort.SliceStable(out, func(i, j int) bool {
		for _, f := range sortBy {
			c, _ := compareValues(out[i].field(f), out[j].field(f))
			if c != 0 {
				return (c < 0) != desc
			}
		}
		return false
	})
	e.aqlCache = &aqlCacheEntry{key: key, items: out}
	return out, nil
}

package artifactory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxSubscriptionBody bounds a subscription document.
const maxSubscriptionBody = 1 << 20

// serveSubscriptions is the Event API (spec §5.1). It needs an admin.
func (e *Emulator) serveSubscriptions(w http.ResponseWriter, r *http.Request, key string) {
	p := e.restAuth(w, r, false)
	if p == nil {
		return
	}
	if !p.admin {
		writeRESTError(w, http.StatusForbidden, "Forbidden")
		return
	}
	readSub := func() (Subscription, bool) {
		var s Subscription
		b, err := io.ReadAll(io.LimitReader(r.Body, maxSubscriptionBody))
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err == nil {
			err = validateSubscription(&s)
		}
		if err != nil {
			writeRESTError(w, http.StatusBadRequest, err.Error())
			return s, false
		}
		return s, true
	}
	switch {
	case key == "" && r.Method == http.MethodGet:
		e.mu.Lock()
		out := []Subscription{}
		for _, k := range e.subOrder {
			out = append(out, masked(*e.subs[k]))
		}
		e.mu.Unlock()
		writeEventJSON(w, http.StatusOK, out)
	case key == "" && r.Method == http.MethodPost:
		s, ok := readSub()
		if !ok {
			return
		}
		e.mu.Lock()
		_, exists := e.subs[s.Key]
		e.mu.Unlock()
		if exists {
			writeRESTError(w, http.StatusConflict, "Subscription already exists")
			return
		}
		_ = e.Subscribe(s)
		writeEventJSON(w, http.StatusCreated, masked(s))
	case key == "test" && r.Method == http.MethodPost:
		s, ok := readSub()
		if !ok {
			return
		}
		e.testSubscription(w, s)
	case key != "" && !strings.Contains(key, "/"):
		e.mu.Lock()
		cur, ok := e.subs[key]
		var c Subscription
		if ok {
			c = *cur
		}
		e.mu.Unlock()
		if !ok {
			writeRESTError(w, http.StatusNotFound, "Subscription does not exist")
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeEventJSON(w, http.StatusOK, masked(c))
		case http.MethodPut:
			s, ok := readSub()
			if !ok {
				return
			}
			s.Key = key
			_ = e.Subscribe(s)
			writeEventJSON(w, http.StatusOK, masked(s))
		case http.MethodDelete:
			e.Unsubscribe(key)
			w.WriteHeader(http.StatusNoContent)
		default:
			writeRESTError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		}
	default:
		writeRESTError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

// masked hides handler secrets when a subscription is read back [I].
func masked(s Subscription) Subscription {
	hs := make([]Handler, len(s.Handlers))
	for i, h := range s.Handlers {
		if h.Secret != "" {
			h.Secret = "********"
		}
		hs[i] = h
	}
	s.Handlers = hs
	return s
}

func writeEventJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalCompact(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// testSubscription sends a dummy event of the subscription's domain to each handler,
// synchronously; it is not recorded in the troubleshooting log (spec §5.4).
func (e *Emulator) testSubscription(w http.ResponseWriter, s Subscription) {
	data := any(DockerData{RepoKey: "example-repo-local", Path: "example/image/1.0/manifest.json", Name: "manifest.json",
		SHA256: strings.Repeat("0", 64), Size: 1, ImageName: "image", Tag: "1.0", Platforms: []Platform{}, ImageType: "docker"})
	if s.EventFilter.Domain != "docker" {
		data = ArtifactData{RepoKey: "example-repo-local", Path: "example/file.txt", Name: "file.txt", SHA256: strings.Repeat("0", 64), Size: 1}
	}
	env := envelope{Domain: s.EventFilter.Domain, EventType: s.EventFilter.EventTypes[0], Data: data, SubscriptionKey: s.Key,
		JPDOrigin: e.jpdOrigin(), Source: "jfrog/jfrt@" + e.serviceID}
	payload, _ := marshalCompact(env)
	for _, h := range s.Handlers {
		if _, err := e.hooks.attempt(delivery{id: "TEST", sub: s.Key, handler: h, env: env, payload: payload, test: true}, 0); err != nil {
			writeEventJSON(w, http.StatusOK, map[string]string{"result": "failure", "message": err.Error()})
			return
		}
	}
	writeEventJSON(w, http.StatusOK, map[string]string{"result": "success", "message": "Test is successful"})
}

// dockerPromote copies or moves a tag between repositories through the upstream registry
// (POST {rt}/api/docker/{repo}/v2/promote) and emits docker "promoted" with the target's data
// (which repo_key real Artifactory reports is open, spec §5.2 [?]).
func (e *Emulator) dockerPromote(w http.ResponseWriter, r *http.Request, key string) {
	if r.Method != http.MethodPost {
		writeRESTError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	p := e.restAuth(w, r, false)
	if p == nil {
		return
	}
	var req struct {
		TargetRepo             string `json:"targetRepo"`
		DockerRepository       string `json:"dockerRepository"`
		TargetDockerRepository string `json:"targetDockerRepository"`
		Tag                    string `json:"tag"`
		TargetTag              string `json:"targetTag"`
		Copy                   bool   `json:"copy"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err == nil {
		err = json.Unmarshal(b, &req)
	}
	if err != nil || req.TargetRepo == "" || req.DockerRepository == "" || req.Tag == "" {
		writeRESTError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if req.TargetDockerRepository == "" {
		req.TargetDockerRepository = req.DockerRepository
	}
	if req.TargetTag == "" {
		req.TargetTag = req.Tag
	}
	if _, ok := e.repos[req.TargetRepo]; !ok || !p.canRead(key) || !p.canWrite(req.TargetRepo) {
		writeRESTError(w, http.StatusForbidden, "Forbidden")
		return
	}
	src := e.physicalRead(key, 0)
	dst, err := e.physicalWrite(req.TargetRepo)
	if err != nil || len(src) == 0 {
		writeRESTError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if err := e.copyImage(r.Context(), src[0], req.DockerRepository, req.Tag, dst, req.TargetDockerRepository, req.TargetTag, p.name, 0); err != nil {
		writeRESTError(w, http.StatusNotFound, "Unable to find tag: "+err.Error())
		return
	}
	e.mu.Lock()
	it := e.stores[dst].images[req.TargetDockerRepository][req.TargetTag]
	e.mu.Unlock()
	if !req.Copy {
		e.mu.Lock()
		var removed []*Item
		if st := e.stores[src[0]]; st != nil {
			removed = st.deleteTree(req.DockerRepository + "/" + req.Tag)
			e.deleted[deletedKey(src[0], req.DockerRepository, req.Tag)] = true
			e.gen++
		}
		e.mu.Unlock()
		e.emitRemoved(src[0], removed)
	}
	if it != nil {
		e.Emit(Event{Domain: "docker", EventType: "promoted", Data: e.dockerData(dst, "promoted", it, req.TargetDockerRepository, req.TargetTag, it.platforms)})
	}
	writeJackson(w, http.StatusOK, map[string]any{})
}

// copyImage copies a manifest (and, for an index, its children) with its blobs mounted across
// repositories upstream, recording it like a push.
func (e *Emulator) copyImage(ctx context.Context, srcPhys, srcImg, ref, dstPhys, dstImg, dstRef, user string, depth int) error {
	if e.upstream == nil || depth > 2 {
		return fmt.Errorf("cannot copy %s", ref)
	}
	base := strings.TrimSuffix(e.upstream.String(), "/") + "/v2/"
	do := func(method, url string, body []byte, ct string) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set("Accept", strings.Join([]string{mtOCIIndex, mtDockerList, mtDockerImage, "application/vnd.oci.image.manifest.v1+json"}, ","))
		if e.opts.UpstreamUser != "" {
			req.SetBasicAuth(e.opts.UpstreamUser, e.opts.UpstreamPassword)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest))
		return resp, b, err
	}
	resp, manifest, err := do(http.MethodGet, base+srcPhys+"/"+srcImg+"/manifests/"+ref, nil, "")
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("manifest %s/%s:%s not found", srcPhys, srcImg, ref)
	}
	ct := resp.Header.Get("Content-Type")
	info, _ := parseManifest(manifest, ct)
	if info.isIndex() {
		for _, m := range info.Manifests {
			if err := e.copyImage(ctx, srcPhys, srcImg, m.Digest, dstPhys, dstImg, m.Digest, user, depth+1); err != nil {
				return err
			}
		}
	} else {
		digests := []string{}
		if info.Config != nil {
			digests = append(digests, info.Config.Digest)
		}
		for _, l := range info.Layers {
			digests = append(digests, l.Digest)
		}
		for _, d := range digests {
			resp, _, err := do(http.MethodPost, base+dstPhys+"/"+dstImg+"/blobs/uploads/?mount="+d+"&from="+srcPhys+"/"+srcImg, nil, "")
			if err != nil || resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("mount %s failed", d)
			}
		}
	}
	resp, _, err = do(http.MethodPut, base+dstPhys+"/"+dstImg+"/manifests/"+dstRef, manifest, ct)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put manifest %s failed", dstRef)
	}
	e.recordManifest(dstPhys, dstImg, dstRef, manifest, ct, user)
	return nil
}

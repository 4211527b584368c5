package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// apiError is an OpenAI-style error with its HTTP status.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func newError(status int, typ, param, code, format string, args ...any) *apiError {
	e := &apiError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	return e
}

// invalid is a 400 for a parameter with a bad value.
func invalid(param, format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "invalid_request_error", param, "invalid_value", format, args...)
}

// tooLong is a 422: a valid request beyond what this model can hold.
func tooLong(param, format string, args ...any) *apiError {
	return newError(http.StatusUnprocessableEntity, "invalid_request_error", param, "context_length_exceeded", format, args...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// A write error means the client left; there is no one to tell.
	_ = enc.Encode(v)
}

// writeError sends err as an OpenAI error body; errors that are not
// apiErrors are internal (500).
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = newError(http.StatusInternalServerError, "server_error", "", "internal_error", "%v", err)
	}
	if ae.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	writeJSON(w, ae.Status, map[string]*apiError{"error": ae})
}

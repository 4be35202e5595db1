;;; lsp-llm.el --- Ghost text from the lsp-llm server, over eglot  -*- lexical-binding: t; -*-

;; Version: 0.1
;; Package-Requires: ((emacs "28.1") (eglot "1.9") (jsonrpc "1.0.14"))
;; Keywords: convenience, languages, tools
;; SPDX-License-Identifier: Apache-2.0

;;; Commentary:

;; `lsp-llm-mode' shows lsp-llm's inline completions as ghost text in buffers that eglot
;; connects to an lsp-llm server: after a pause in typing (`lsp-llm-idle-delay') it asks
;; `textDocument/inlineCompletion' at point and shows the first item after the cursor,
;; in the `lsp-llm-ghost' face, without touching the buffer.
;;
;; - TAB accepts the whole suggestion, M-f its next word, C-e its first line; C-g or any
;;   other command dismisses it.
;; - Typing a character the suggestion goes on with keeps the rest on screen (no new
;;   request); any other edit cancels the request in flight (`$/cancelRequest', so the
;;   server stops generating) and asks again after the pause.
;; - An item whose range starts before the cursor (lsp-llm re-indents a line the editor
;;   indented wrongly) replaces that range when accepted; until then the line is shown
;;   as it will be.
;;
;; Set-up (eglot 1.9 or later):
;;
;;   (add-to-list 'load-path "/path/to/lsp-llm/editors/emacs")
;;   (require 'lsp-llm)
;;   (add-to-list 'eglot-server-programs '((python-mode js-mode) "lsp-llm" "serve"))
;;   (add-hook 'eglot-managed-mode-hook #'lsp-llm-mode)

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'eglot)
(require 'jsonrpc)

(defgroup lsp-llm nil
  "Ghost text from the lsp-llm language server."
  :group 'tools
  :prefix "lsp-llm-")

(defcustom lsp-llm-idle-delay 0.15
  "Seconds without typing before a suggestion is asked for."
  :type 'number)

(defface lsp-llm-ghost '((t :inherit shadow))
  "Face of the ghost text.")

(defvar-local lsp-llm--ghost nil
  "The suggestion on screen: a plist (:text TEXT :start POS).
Accepting it replaces the buffer from START to point with TEXT.")
(defvar-local lsp-llm--overlay nil)
(defvar-local lsp-llm--pending nil
  "The request in flight: (SERVER ID), or nil.")
(defvar-local lsp-llm--timer nil)
(defvar-local lsp-llm--showing nil
  "Non-nil while ghost text is on screen: turns on `lsp-llm-active-map'.")

(defvar lsp-llm-active-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "TAB") #'lsp-llm-accept)
    (define-key map (kbd "<tab>") #'lsp-llm-accept)
    (define-key map (kbd "M-f") #'lsp-llm-accept-word)
    (define-key map (kbd "C-e") #'lsp-llm-accept-line)
    (define-key map (kbd "C-g") #'lsp-llm-dismiss)
    map)
  "Keys while ghost text is on screen.
Without ghost text they run their usual commands.")

(defvar lsp-llm--emulation-alist `((lsp-llm--showing . ,lsp-llm-active-map)))

;;;; Asking

(defun lsp-llm--cancel ()
  "Cancel the request in flight, if any: the server stops generating it."
  (when lsp-llm--pending
    (cl-destructuring-bind (server id) lsp-llm--pending
      (when (and id (jsonrpc-running-p server))
        (jsonrpc-notify server :$/cancelRequest (list :id id))))
    (setq lsp-llm--pending nil)))

(defun lsp-llm--send (server params on-result)
  "Send inlineCompletion PARAMS to SERVER; call ON-RESULT with the result.
Return the request's id (nil where this jsonrpc does not tell it)."
  (let ((args (list :success-fn on-result :error-fn #'ignore :timeout-fn #'ignore)))
    (if (fboundp 'jsonrpc--async-request-1)
        (car (apply #'jsonrpc--async-request-1 server :textDocument/inlineCompletion params
                    args))
      (apply #'jsonrpc-async-request server :textDocument/inlineCompletion params args)
      nil)))

(defun lsp-llm-ask ()
  "Ask the server for a suggestion at point, replacing any request in flight."
  (interactive)
  (let ((server (eglot-current-server)))
    (when server
      (lsp-llm--cancel)
      (eglot--signal-textDocument/didChange)
      (let* ((buffer (current-buffer))
             (tick (buffer-chars-modified-tick))
             (here (point))
             (params (list :textDocument (eglot--TextDocumentIdentifier)
                           :position (eglot--pos-to-lsp-position here)
                           :context (list :triggerKind 2)))
             (id nil))
        (setq id (lsp-llm--send
                  server params
                  (lambda (result)
                    (when (buffer-live-p buffer)
                      (with-current-buffer buffer
                        (when (equal lsp-llm--pending (list server id))
                          (setq lsp-llm--pending nil))
                        ;; an answer for a buffer or cursor that moved on is dropped
                        (when (and (= tick (buffer-chars-modified-tick)) (= here (point)))
                          (lsp-llm--show result)))))))
        (setq lsp-llm--pending (list server id))))))

(defun lsp-llm--first-item (result)
  (let ((items (if (and (listp result) (plist-member result :items))
                   (plist-get result :items)
                 result)))
    (and (> (length items) 0) (elt items 0))))

(defun lsp-llm--show (result)
  "Show the first item of an inlineCompletion RESULT as ghost text."
  (let* ((item (lsp-llm--first-item result))
         (text (and item (plist-get item :insertText)))
         (text (if (stringp text) text (plist-get text :value)))
         (range (and item (plist-get item :range)))
         (start (if range (eglot--lsp-position-to-point (plist-get range :start)) (point))))
    (lsp-llm--clear)
    (when (and text (not (string-empty-p text)) (<= start (point)))
      (setq lsp-llm--ghost (list :text text :start start))
      (lsp-llm--draw))))

(defun lsp-llm--draw ()
  "Put `lsp-llm--ghost' on screen.
Shown is what it adds after the text already before point."
  (let* ((text (plist-get lsp-llm--ghost :text))
         (start (plist-get lsp-llm--ghost :start))
         (typed (buffer-substring-no-properties start (point)))
         (prefixed (string-prefix-p typed text))
         (ghost (propertize (if prefixed (substring text (length typed)) text)
                            'face 'lsp-llm-ghost)))
    (when lsp-llm--overlay (delete-overlay lsp-llm--overlay))
    (if prefixed
        (progn
          (setq lsp-llm--overlay (make-overlay (point) (point) nil nil t))
          ;; the cursor stays before the ghost text
          (put-text-property 0 (min 1 (length ghost)) 'cursor t ghost)
          (overlay-put lsp-llm--overlay 'after-string ghost))
      ;; a re-indented line: what is before point is hidden and the line shown as it will be
      (setq lsp-llm--overlay (make-overlay start (point)))
      (overlay-put lsp-llm--overlay 'display ghost))
    (overlay-put lsp-llm--overlay 'lsp-llm t)
    (setq lsp-llm--showing t)))

(defun lsp-llm--clear ()
  (when lsp-llm--overlay (delete-overlay lsp-llm--overlay))
  (setq lsp-llm--overlay nil lsp-llm--ghost nil lsp-llm--showing nil))

;;;; Accepting

(defun lsp-llm--accept (take)
  "Insert the part of the ghost text that TAKE keeps.
TAKE is a function of the text not yet in the buffer."
  (let* ((text (plist-get lsp-llm--ghost :text))
         (start (plist-get lsp-llm--ghost :start))
         (typed (buffer-substring-no-properties start (point)))
         (prefixed (string-prefix-p typed text))
         (rest (if prefixed (substring text (length typed)) text))
         (part (funcall take rest)))
    (lsp-llm--clear)
    (unless prefixed (delete-region start (point)))
    (insert part)
    (when (< (length part) (length rest))
      ;; the rest stays on screen
      (setq lsp-llm--ghost (list :text (substring rest (length part)) :start (point)))
      (lsp-llm--draw))))

(defun lsp-llm-accept ()
  "Insert the whole suggestion."
  (interactive)
  (if lsp-llm--ghost (lsp-llm--accept #'identity) (lsp-llm--fallback)))

(defun lsp-llm-accept-word ()
  "Insert the suggestion's next word."
  (interactive)
  (if lsp-llm--ghost
      (lsp-llm--accept (lambda (rest)
                         (if (string-match "\\`\\W*\\w+" rest) (match-string 0 rest) rest)))
    (lsp-llm--fallback)))

(defun lsp-llm-accept-line ()
  "Insert the suggestion up to the end of its first line."
  (interactive)
  (if lsp-llm--ghost
      (lsp-llm--accept (lambda (rest) (car (split-string rest "\n"))))
    (lsp-llm--fallback)))

(defun lsp-llm-dismiss ()
  "Remove the suggestion and cancel any request in flight."
  (interactive)
  (lsp-llm--cancel)
  (lsp-llm--clear))

(defun lsp-llm--fallback ()
  "Run what the key would do without ghost text on screen."
  (let* ((lsp-llm--showing nil)
         (command (key-binding (this-command-keys-vector))))
    (when (commandp command) (call-interactively command))))

;;;; Following the user

(defun lsp-llm--typed-ahead-p ()
  "Whether the last command typed the character the ghost text went on with."
  (and lsp-llm--ghost
       (eq this-command 'self-insert-command)
       (let* ((text (plist-get lsp-llm--ghost :text))
              (typed (buffer-substring-no-properties (plist-get lsp-llm--ghost :start) (point))))
         (and (string-prefix-p typed text) (< (length typed) (length text))))))

(defvar-local lsp-llm--last-tick nil)

(defun lsp-llm--post-command ()
  (let ((changed (not (eql lsp-llm--last-tick (buffer-chars-modified-tick)))))
    (setq lsp-llm--last-tick (buffer-chars-modified-tick))
    (cond
     ((memq this-command '(lsp-llm-accept lsp-llm-accept-word lsp-llm-accept-line
                                          lsp-llm-ask)))
     ((lsp-llm--typed-ahead-p) (lsp-llm--draw))
     (t
      (lsp-llm--clear)
      (when changed
        (lsp-llm--cancel)
        (when lsp-llm--timer (cancel-timer lsp-llm--timer))
        (setq lsp-llm--timer
              (run-with-idle-timer lsp-llm-idle-delay nil #'lsp-llm--on-idle (current-buffer))))))))

(defun lsp-llm--on-idle (buffer)
  (when (and (buffer-live-p buffer) (eq buffer (current-buffer)) lsp-llm-mode)
    (lsp-llm-ask)))

;;;###autoload
(define-minor-mode lsp-llm-mode
  "Ghost text from the lsp-llm server eglot manages this buffer with."
  :lighter " llm"
  (if lsp-llm-mode
      (progn
        (add-to-list 'emulation-mode-map-alists 'lsp-llm--emulation-alist)
        (add-hook 'post-command-hook #'lsp-llm--post-command nil t))
    (remove-hook 'post-command-hook #'lsp-llm--post-command t)
    (lsp-llm-dismiss)))

(provide 'lsp-llm)
;;; lsp-llm.el ends here

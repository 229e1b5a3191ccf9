// Security keys (WebAuthn): a form marked data-webauthn asks the server for the ceremony's options, hands them
// to the browser (navigator.credentials.create for a new key, .get to use one) and posts the key's answer back.
// The server keeps the challenge and verifies everything; this file only converts between JSON and bytes.
(function () {
  "use strict";

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer), binary = "";
    for (var i = 0; i < bytes.length; i += 1) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBytes(descriptors) {
    return (descriptors || []).map(function (descriptor) {
      return Object.assign({}, descriptor, {id: toBytes(descriptor.id)});
    });
  }

  // the server's options (JSON, base64url strings) as the browser's API wants them (ArrayBuffers)
  function creationOptions(options) {
    return Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      user: Object.assign({}, options.user, {id: toBytes(options.user.id)}),
      excludeCredentials: withBytes(options.excludeCredentials)
    });
  }

  function requestOptions(options) {
    return Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      allowCredentials: withBytes(options.allowCredentials)
    });
  }

  // the key's answer as JSON (the shape py_webauthn parses)
  function answerJson(credential) {
    var response = credential.response, json = {
      id: credential.id, rawId: toBase64url(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {clientDataJSON: toBase64url(response.clientDataJSON)}
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) { json.response.userHandle = toBase64url(response.userHandle); }
    }
    return json;
  }

  function postJson(form, url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": form.dataset.csrf},
      body: JSON.stringify(body)
    }).catch(function () {
      throw new Error(form.dataset.msgFailed);
    }).then(function (reply) {
      return reply.json().catch(function () { return {message: form.dataset.msgFailed}; }).then(function (data) {
        if (!reply.ok) { throw new Error(data.message || form.dataset.msgFailed); }
        return data;
      });
    });
  }

  function show(form, message) {
    var box = form.querySelector("[data-webauthn-message]");
    box.textContent = message;
    box.classList.remove("d-none");
  }

  function run(form) {
    var nameField = form.querySelector("[name=name]");
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    postJson(form, form.dataset.optionsUrl, {}).then(function (options) {
      var ceremony = options.user
        ? navigator.credentials.create({publicKey: creationOptions(options)})
        : navigator.credentials.get({publicKey: requestOptions(options)});
      return ceremony.catch(function (error) {
        throw new Error(error && error.name === "InvalidStateError" ? form.dataset.msgKnown : form.dataset.msgCancelled);
      });
    }).then(function (credential) {
      return postJson(form, form.dataset.answerUrl,
                      {credential: answerJson(credential), name: nameField ? nameField.value : ""});
    }).then(function (data) {
      window.location.assign(data.redirect);
    }).catch(function (error) {
      show(form, error.message);
      button.disabled = false;
    });
  }

  document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!window.PublicKeyCredential || !navigator.credentials) {
        show(form, form.dataset.msgUnsupported);
        return;
      }
      run(form);
    });
  });
}());
